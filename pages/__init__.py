"""The app's pages, one module each; every module has `build(shared)` and named callbacks."""

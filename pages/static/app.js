() => {
  // A click on a point of the embedding atlas selects that code: Plotly's plotly_click event
  // writes the point's code into the "code" box, which the page listens to.
  const hook = () => {
    document.querySelectorAll("#atlas-plot .js-plotly-plot").forEach((plot) => {
      if (plot.dataset.codeClick || typeof plot.on !== "function") return;
      plot.dataset.codeClick = "1";
      plot.on("plotly_click", (event) => {
        const point = event && event.points && event.points[0];
        if (!point || point.customdata === undefined) return;
        const input = document.querySelector("#atlas-code input");
        if (!input) return;
        input.value = String(point.customdata);
        input.dispatchEvent(new Event("input", { bubbles: true }));
        input.dispatchEvent(new KeyboardEvent("keydown", { key: "Enter", bubbles: true }));
        input.dispatchEvent(new Event("blur", { bubbles: true }));
      });
    });
  };
  new MutationObserver(hook).observe(document.body, { childList: true, subtree: true });
  hook();
}

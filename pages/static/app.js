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
  // The presenter view: larger type and pictures for a projector (app.css), on when the address asks
  // for it (?presenter) or the header's button turns it on. Plotly draws its own text, so each
  // figure on show is told the larger base size too (and the usual one back).
  const PLOTLY_FONT = 12, PRESENTER_FONT = 17;
  const fitFonts = () => {
    if (!window.Plotly) return;
    const size = document.body.classList.contains("presenter") ? PRESENTER_FONT : PLOTLY_FONT;
    document.querySelectorAll(".js-plotly-plot").forEach((plot) => {
      if (!plot.layout || plot.offsetParent === null) return;  // not drawn yet, or on a hidden tab
      if (((plot.layout.font && plot.layout.font.size) || PLOTLY_FONT) !== size) {
        window.Plotly.relayout(plot, { "font.size": size });
      }
    });
  };
  new MutationObserver(() => { hook(); fitFonts(); }).observe(document.body, { childList: true, subtree: true });
  new MutationObserver(fitFonts).observe(document.body, { attributes: true, attributeFilter: ["class"] });
  hook();
  if (new URLSearchParams(window.location.search).has("presenter")) document.body.classList.add("presenter");
}

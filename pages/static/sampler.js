// The learned prior's step-by-step sampler (pages/sampling.py), played in the browser from frames the
// server sends once. Runs as the js_on_load of a gr.HTML: `element` is its root, `props.value` its
// frames, `watch` calls back when new frames arrive.
const STEP_MS = 320; // one step at normal speed: slow enough to say each drawn code aloud
const VIRIDIS = ["#440154", "#482878", "#3e4989", "#31688e", "#26828e", "#1f9e89", "#35b779", "#6ece58", "#b5de2b", "#fde725"];

const root = element.querySelector(".sampler") || element;
root.innerHTML = `
  <p class="sampler-note" data-part="note" hidden></p>
  <div class="sampler-body" data-part="body" hidden>
    <div class="sampler-controls">
      <button type="button" class="sampler-play" data-part="play" aria-pressed="false">&#9654; Play</button>
      <label class="sampler-speed">speed
        <select data-part="speed">
          <option value="0.5">slow</option><option value="1" selected>normal</option>
          <option value="2">fast</option><option value="4">fastest</option>
        </select>
      </label>
      <label class="sampler-step">step <input type="range" data-part="step" min="0" max="0" value="0" step="1"></label>
      <output data-part="count">0 / 0</output>
    </div>
    <p class="sampler-title" data-part="title"></p>
    <div class="sampler-panels">
      <figure class="sampler-panel sampler-decoded">
        <figcaption>decoded so far <span>cells not drawn yet: background</span></figcaption>
        <img data-part="frame" alt="the grid drawn so far, decoded">
      </figure>
      <figure class="sampler-panel">
        <figcaption>codes so far<b data-part="level"></b> <span>grey: not drawn yet · outlined: just drawn</span></figcaption>
        <div class="sampler-grid" data-part="grid" role="img" aria-label="code numbers drawn so far"></div>
      </figure>
      <figure class="sampler-panel sampler-next">
        <figcaption data-part="question"></figcaption>
        <div class="sampler-candidates" data-part="candidates"></div>
        <p class="sampler-hint">tiles: what each code paints; p: the prior's probability before temperature</p>
      </figure>
    </div>
  </div>`;
const part = (name) => root.querySelector(`[data-part="${name}"]`);
const [note, body, playButton, speed, slider, count, title, frame, grid, question, candidates, levelName] = [
  "note", "body", "play", "speed", "step", "count", "title", "frame", "grid", "question", "candidates", "level",
].map(part);

let data = null; // the frames from the server
// A hierarchy is drawn in stages, a level at a time, top first: each stage's grid and the step it starts at.
// One grid is one stage.
let stages = [];
let shownStage = -1;
let codes = []; // the shown stage's final grid, cell by cell in raster order
let step = 0;
let timer = null;

const last = () => (data ? data.frames.length - 1 : 0);

function colour(code) {
  // viridis over codes 0..K-1 (the code grids of the other pages use viridis too), dark ink on the light end
  const x = (code / Math.max(1, data.num_embeddings - 1)) * (VIRIDIS.length - 1);
  const i = Math.min(VIRIDIS.length - 2, Math.floor(x));
  const mix = (a, b) => Math.round(a + (b - a) * (x - i));
  const rgb = [1, 3, 5].map((k) => mix(parseInt(VIRIDIS[i].slice(k, k + 2), 16), parseInt(VIRIDIS[i + 1].slice(k, k + 2), 16)));
  return { fill: `rgb(${rgb.join(",")})`, ink: x > 5.5 ? "#111" : "#fff" };
}

function stageOf(s) {
  // the stage that draws cell s of the whole sample (cells counted over every stage, in drawing order)
  let k = 0;
  stages.forEach((stage, i) => {
    if (s >= stage.start) k = i;
  });
  return k;
}

function useStage(k) {
  if (k === shownStage) return;
  shownStage = k;
  levelName.textContent = stages[k].level ? `, ${stages[k].level} level` : "";
  buildGrid(stages[k].grid);
}

function buildGrid(rows) {
  const columns = rows[0].length;
  codes = rows.flat();
  const cell = Math.max(18, Math.min(44, Math.floor(330 / columns)));
  grid.style.setProperty("--cell", `${cell}px`);
  grid.style.setProperty("--cell-font", `${Math.max(9, Math.round(cell * 0.36))}px`);
  grid.style.gridTemplateColumns = `repeat(${columns}, var(--cell))`;
  grid.replaceChildren(
    ...codes.map((_, i) => {
      const div = document.createElement("div");
      div.dataset.cell = `${Math.floor(i / columns)},${i % columns}`;
      return div;
    }),
  );
}

function candidate(code, p, chosen, outside = false) {
  const figure = document.createElement("figure");
  figure.className = ["candidate", chosen && "chosen", outside && "outside"].filter(Boolean).join(" ");
  figure.dataset.code = code;
  const img = document.createElement("img");
  img.src = stages[shownStage].tiles[String(code)];
  img.alt = `the tile of code ${code}`;
  const caption = document.createElement("figcaption");
  const name = document.createElement("strong");
  name.textContent = `code ${code}`;
  const prob = document.createElement("span");
  prob.textContent = `p = ${p < 0.001 ? p.toExponential(1) : p.toFixed(3)}`;
  const bar = document.createElement("i");
  bar.style.width = `${Math.max(2, Math.round(100 * p))}%`;
  caption.append(name, prob, bar);
  if (chosen) {
    const tag = document.createElement("em");
    tag.textContent = outside ? "drawn, not in the top 5" : "drawn";
    caption.append(tag);
  }
  figure.append(img, caption);
  return figure;
}

function showCandidates() {
  const s = step > 0 ? step - 1 : 0; // the cell just drawn, or at step 0 the first one
  const stage = stages[stageOf(s)];
  const columns = stage.grid[0].length;
  const at = s - stage.start; // within its level's grid
  const level = stage.level ? `${stage.level} ` : "";
  const where = `${level}cell (${Math.floor(at / columns)}, ${at % columns})`;
  const drawn = step > 0 ? codes[at] : null;
  question.textContent =
    step > 0 ? `step ${step}: the 5 likeliest codes for ${where}; code ${drawn} was drawn` : `next: the 5 likeliest codes for ${where}`;
  const top = data.top_codes[s];
  const shown = top.map((code, k) => candidate(code, data.top_probs[s][k], code === drawn));
  if (drawn !== null && !top.includes(drawn)) shown.push(candidate(drawn, data.drawn_probs[s], true, true));
  candidates.replaceChildren(...shown);
}

function show(t) {
  step = Math.max(0, Math.min(last(), Math.round(Number(t)) || 0));
  root.dataset.step = step;
  slider.value = step;
  count.textContent = `${step} / ${last()}`;
  frame.src = data.frames[step];
  useStage(stageOf(step > 0 ? step - 1 : 0));
  const done = step - stages[shownStage].start; // cells of the shown level drawn so far
  grid.querySelectorAll("div").forEach((cell, i) => {
    const filled = i < done;
    cell.classList.toggle("empty", !filled);
    cell.classList.toggle("just", i === done - 1);
    if (filled) {
      const { fill, ink } = colour(codes[i]);
      cell.dataset.code = codes[i];
      cell.textContent = codes[i];
      cell.style.background = fill;
      cell.style.color = ink;
    } else {
      delete cell.dataset.code;
      cell.textContent = "";
      cell.style.background = "";
      cell.style.color = "";
    }
  });
  showCandidates();
  label();
}

function label() {
  const playing = timer !== null;
  root.dataset.playing = playing;
  playButton.setAttribute("aria-pressed", playing);
  playButton.innerHTML = playing ? "&#10074;&#10074; Pause" : step >= last() && last() > 0 ? "&#8635; Play again" : "&#9654; Play";
}

function tick() {
  show(step + 1);
  if (step >= last()) pause();
}

function play() {
  if (!data) return;
  if (step >= last()) show(0);
  clearInterval(timer);
  timer = setInterval(tick, STEP_MS / Number(speed.value));
  label();
}

function pause() {
  clearInterval(timer);
  timer = null;
  label();
}

function load(value) {
  const playing = timer !== null;
  pause();
  data = value && value.frames ? value : null;
  note.hidden = !(value && value.note);
  body.hidden = !data;
  if (value && value.note) {
    const command = document.createElement("code");
    command.textContent = value.command || "";
    note.replaceChildren(`${value.note} `, command);
  }
  if (!data) return;
  title.textContent = `Drawing: ${value.title}`;
  slider.max = last();
  stages = data.stages;
  shownStage = -1;
  show(0);
  if (playing) play(); // new settings while playing: the new sample plays from its start
}

playButton.addEventListener("click", () => (timer === null ? play() : pause()));
speed.addEventListener("change", () => timer !== null && play());
slider.addEventListener("input", () => {
  pause();
  show(slider.value);
});
root.addEventListener("sampler:play", () => {
  if (!data) return;
  show(0);
  play();
});
watch("value", () => load(props.value));
load(props.value);

// The console's only script (no build, nothing fetched): plays a job's HLS ladder with the
// hls.js copy served beside it, and asks before a form marked data-confirm is sent.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  const video = document.getElementById("video");
  if (video && video.dataset.src) {
    const src = video.dataset.src;
    if (window.Hls && Hls.isSupported()) {
      const hls = new Hls({ startLevel: 0 });
      hls.loadSource(src);
      hls.attachMedia(video);
      hls.on(Hls.Events.ERROR, (_, d) => { if (d.fatal) video.dataset.error = `${d.type}: ${d.details}`; });
    } else if (video.canPlayType("application/vnd.apple.mpegurl")) {
      video.src = src;  // Safari plays HLS itself
    }
  }
  // "live": the page reloads itself every 10 s (remembered across pages), unless the operator is
  // reading something open or typing.
  const live = document.getElementById("live");
  if (live) {
    live.checked = localStorage.getItem("console.live") === "1";
    live.addEventListener("change", () => localStorage.setItem("console.live", live.checked ? "1" : "0"));
    setInterval(() => {
      const busy = document.querySelector("details[open]") || ["INPUT", "SELECT"].includes(document.activeElement?.tagName)
                   && document.activeElement !== live;
      if (live.checked && !busy && !document.getElementById("video")) location.reload();
    }, 10000);
  }
  for (const form of document.querySelectorAll("form[data-confirm]")) {
    form.addEventListener("submit", e => { if (!window.confirm(form.dataset.confirm)) e.preventDefault(); });
  }
});

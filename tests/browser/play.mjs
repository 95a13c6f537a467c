// Drives examples/player.html in Debian's chromium (playwright-core, no browser download) and
// prints what happened as one JSON line for tests/cloud/test_player.py to judge.
//
//   node play.mjs <page origin> <playback_url> <storyboard_url or ""> <examples dir> <hls.min.js>
//
// The page is answered from files under <page origin>/examples/ (ingest's origin, so the
// playlists are same-origin: the page stands where a site would host it); every other request
// (playlists from ingest, segments and the sprite from the storage front) goes over the network.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const [origin, src, storyboard, examplesDir, hlsFile] = process.argv.slice(2);
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--autoplay-policy=no-user-gesture-required"];
const WANT_SECONDS = 5;
const TIMEOUT_MS = 30000;

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS, timeout: TIMEOUT_MS });
const out = { failed: [], bad_status: [], requests: [] };
try {
  // The page is answered by the route below (no address space of its own: Chrome counts it
  // public), and storage here is on loopback: Chrome's Local Network Access asks for a
  // permission a user would grant. In production page, API and storage are all public.
  const context = await browser.newContext({ permissions: ["local-network-access"] });
  const page = await context.newPage();
  await page.route(`${origin}/examples/**`, route => {
    const name = new URL(route.request().url()).pathname.split("/").pop();
    const [file, type] = name === "hls.min.js" ? [hlsFile, "text/javascript"] : [join(examplesDir, name), "text/html"];
    route.fulfill({ status: 200, contentType: type, body: readFileSync(file) });
  });
  page.on("requestfailed", r => out.failed.push(`${r.url().slice(0, 160)}: ${r.failure()?.errorText}`));
  page.on("response", r => {
    out.requests.push(r.url().split("?")[0]);
    if (r.status() >= 400) out.bad_status.push(`${r.status()} ${r.url().slice(0, 160)}`);
  });
  page.on("console", m => { if (m.type() === "error") out.failed.push(`console: ${m.text().slice(0, 1500)}`); });
  const url = `${origin}/examples/player.html?src=${encodeURIComponent(src)}&storyboard=${encodeURIComponent(storyboard)}`;
  await page.goto(url);
  await page.waitForFunction(s => document.getElementById("video").currentTime >= s || window.player.errors.length,
                             WANT_SECONDS, { timeout: TIMEOUT_MS, polling: 200 });
  if (storyboard) {  // none while a job is only playable (its storyboard comes at the end)
    await page.waitForFunction(() => window.player.spriteLoaded || window.player.errors.length, null, { timeout: TIMEOUT_MS });
    // Hover the scrub bar three quarters along: the preview shows that moment's tile.
    const box = await page.locator("#scrub").boundingBox();
    await page.mouse.move(box.x + box.width * 0.75, box.y + box.height / 2);
  }
  Object.assign(out, await page.evaluate(() => ({
    current_time: document.getElementById("video").currentTime,
    duration: document.getElementById("video").duration,
    levels: window.player.levels,
    switches: window.player.switches,
    cues: window.player.cues.length,
    sprite_loaded: window.player.spriteLoaded,
    preview: { display: getComputedStyle(document.getElementById("preview")).display,
               image: document.getElementById("preview").style.backgroundImage.slice(0, 200), shown: window.player.shown },
    errors: window.player.errors,
  })));
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));

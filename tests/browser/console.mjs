// Drives the operators' console in Debian's chromium (playwright-core, no browser download), as an
// operator would, and prints what it saw as one JSON line for tests/cloud/test_console.py.
//
//   node console.mjs check <console url> <failed job id> <parked job id>
//   node console.mjs shots <console url> <out dir> <job id> ...   (make screenshots: every page, 1280 px and a phone)
import { chromium } from "playwright-core";

const [mode, base, ...rest] = process.argv.slice(2);
const FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
               "--disable-component-update", "--no-first-run", "--autoplay-policy=no-user-gesture-required"];
const TIMEOUT_MS = 30000;
const EMAIL = "operator@example.com";

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", args: FLAGS, timeout: TIMEOUT_MS });
const out = { errors: [] };
try {
  const context = await browser.newContext({ permissions: ["local-network-access"], viewport: { width: 1280, height: 900 } });
  context.setDefaultTimeout(TIMEOUT_MS);
  const page = await context.newPage();
  page.on("pageerror", e => out.errors.push(`page: ${e.message}`));
  // Sign in where IAP would send us (the local stand-in's page).
  await page.goto(`${base}/`);
  out.sign_in_page = new URL(page.url()).pathname;
  await page.fill("input[name=email]", EMAIL);
  await Promise.all([page.waitForURL(u => !u.pathname.startsWith("/_iap/")), page.click("button[type=submit]")]);
  out.signed_in_as = (await page.textContent(".who .operator")).trim();

  if (mode === "check") {
    const [failedJob, parkedJob] = rest;
    // Jobs page: filter failed, find the job, open it, read its reason.
    await page.selectOption("select[name=state]", "failed");
    await Promise.all([page.waitForURL(/state=failed/), page.click(".filters button[type=submit]")]);
    await Promise.all([page.waitForURL(new RegExp(`/jobs/${failedJob}`)),
                       page.click(`a[href="/jobs/${failedJob}"]`)]);
    out.failed_reason = (await page.textContent("#error .reason")).trim();
    out.failed_class = (await page.textContent("#error .errclass")).trim();
    // Dead letters: the parked job's message, replayed from the page.
    await page.click("nav >> text=Dead letters");
    const message = page.locator(`article#job-${parkedJob}`);
    out.dead_letter_reason = (await message.locator(".reason").textContent()).trim();
    // A purge asks first: the confirmation page, then "keep them".
    await Promise.all([page.waitForURL(/dead-letters\/purge/), message.locator("text=Purge…").click()]);
    out.purge_asks = (await page.textContent("h1")).trim();
    await Promise.all([page.waitForURL(/\/dead-letters$/), page.click("text=No, keep them")]);
    await Promise.all([page.waitForURL(/notice=/), page.locator(`article#job-${parkedJob} button:has-text("Replay")`).click()]);
    out.replay_notice = (await page.textContent("#notice")).trim();
    // The job page until it shows completed.
    await page.goto(`${base}/jobs/${parkedJob}`);
    const deadline = Date.now() + TIMEOUT_MS;
    while (Date.now() < deadline) {
      out.parked_job_status = (await page.textContent("h1 .status")).trim();
      if (out.parked_job_status === "completed") break;
      await page.waitForTimeout(500);
      await page.reload();
    }
    out.thumbnails = await page.locator(".thumbs img").count();
    await page.goto(`${base}/audit`);
    out.audit = await page.locator("table.audit tbody tr").allTextContents();
  } else if (mode === "shots") {
    const [dir, ...jobs] = rest;
    const shots = [["jobs", "/jobs"], ["dead-letters", "/dead-letters"], ["health", "/health"], ["audit", "/audit"],
                   ...jobs.map((j, i) => [`job-${i + 1}`, `/jobs/${j}`])];
    for (const [name, path] of shots) {
      await page.goto(`${base}${path}`);
      await page.waitForLoadState("networkidle");
      if (path.startsWith("/jobs/")) await page.waitForTimeout(1500);  // the poster, the first frames
      await page.screenshot({ path: `${dir}/${name}.png`, fullPage: true });
    }
    await page.setViewportSize({ width: 390, height: 844 });
    for (const [name, path] of shots.slice(0, 1).concat(shots.slice(4, 5))) {
      await page.goto(`${base}${path}`);
      await page.waitForLoadState("networkidle");
      await page.screenshot({ path: `${dir}/${name}-phone.png`, fullPage: false });
    }
    out.shots = shots.length;
  }
} catch (e) {
  out.errors.push(String(e).slice(0, 2000));
} finally {
  await browser.close();
}
console.log(JSON.stringify(out));

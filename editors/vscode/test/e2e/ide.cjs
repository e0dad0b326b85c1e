// End-to-end: a real VS Code (code-server) with the extension installed from its .vsix,
// driven by headless Chromium. Run by crates/pgfork/tests/ide.rs, which prepares the
// repository (pgfork initialised, hooks installed) and starts code-server.
//
// usage: node ide.cjs URL REPO SCREENSHOT
// Prints one JSON line of timings on success; exits non-zero with the reason otherwise.

const { chromium } = require("playwright-core");
const { execFileSync } = require("child_process");

const [url, repo, screenshot] = process.argv.slice(2);
const chromiumPath = process.env.PGFORK_CHROMIUM || "/usr/bin/chromium";

function sql(branch, query) {
  const dbUrl = execFileSync("pgfork", ["url", branch], { cwd: repo, encoding: "utf8" }).trim();
  return execFileSync("psql", [dbUrl, "-XAtqc", query], { encoding: "utf8" }).trim();
}

async function until(what, timeoutMs, check) {
  const start = Date.now();
  let last;
  while (Date.now() - start < timeoutMs) {
    try {
      if (await check()) {
        return Date.now() - start;
      }
    } catch (e) {
      last = e;
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${last.message}` : ""}`);
}

async function command(page, title) {
  await page.keyboard.press("F1");
  const input = page.locator(".quick-input-widget input");
  await input.waitFor({ state: "visible", timeout: 15000 });
  await input.fill(`>${title}`);
  const row = page.locator(".quick-input-list .monaco-list-row", { hasText: title }).first();
  await row.waitFor({ state: "visible", timeout: 15000 });
  await row.click();
}

(async () => {
  const timings = {};
  const browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 850 } });
  try {
    const t0 = Date.now();
    await page.goto(`${url}/?folder=${encodeURIComponent(repo)}`);
    const statusItem = (text) => page.locator(".statusbar-item", { hasText: text }).first();

    // The status bar shows the branch paired with HEAD.
    await statusItem("main (").waitFor({ state: "visible", timeout: 120000 });
    timings.status_bar_ms = Date.now() - t0;

    // The branch tree, in pgfork's own view.
    await command(page, "pgfork: Focus on Database branches View");
    const treeRow = (text) => page.locator(".pane-body .monaco-list-row", { hasText: text }).first();
    await treeRow("main").waitFor({ state: "visible", timeout: 30000 });

    // git checkout -b in the integrated terminal: the hook makes the database branch, the
    // extension follows HEAD and says what happened.
    await command(page, "Terminal: Create New Terminal");
    const term = page.locator(".terminal-wrapper .xterm").first();
    await term.waitFor({ state: "visible", timeout: 30000 });
    await term.click();
    await page.waitForTimeout(1500);
    const t1 = Date.now();
    await page.keyboard.type("git checkout -b feature-ide\n", { delay: 15 });
    await statusItem("feature-ide (running").waitFor({ state: "visible", timeout: 60000 });
    timings.checkout_to_status_bar_ms = Date.now() - t1;
    await treeRow("feature-ide").waitFor({ state: "visible", timeout: 30000 });
    await page
      .locator(".notification-toast", { hasText: "created database branch" })
      .first()
      .waitFor({ state: "visible", timeout: 30000 });

    // A row written in the branch, then "Reset From Parent": the row is gone.
    sql("feature-ide", "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 4242, now())");
    if (sql("feature-ide", "SELECT count(*) FROM pgbench_history WHERE delta = 4242") !== "1") {
      throw new Error("the row was not written");
    }
    await command(page, "pgfork: Reset From Parent");
    const reset = page.locator(".monaco-dialog-box .monaco-button", { hasText: "Reset" }).first();
    await reset.waitFor({ state: "visible", timeout: 15000 });
    const t2 = Date.now();
    await reset.click();
    await until("the reset to remove the row", 60000, () => sql("feature-ide", "SELECT count(*) FROM pgbench_history WHERE delta = 4242") === "0");
    timings.reset_ms = Date.now() - t2;
    await page
      .locator(".notification-toast", { hasText: "now holds" })
      .first()
      .waitFor({ state: "visible", timeout: 30000 });
    await page.screenshot({ path: screenshot });

    // Without pgfork's git hooks, the extension pairs HEAD itself (pgfork.pairOnHeadChange).
    execFileSync("pgfork", ["hooks", "uninstall"], { cwd: repo });
    await page.waitForTimeout(3000); // one refresh, so the extension knows the hooks are gone
    await term.click();
    const t3 = Date.now();
    await page.keyboard.type("git checkout -b without-hooks\n", { delay: 15 });
    await statusItem("without-hooks (").waitFor({ state: "visible", timeout: 60000 });
    timings.pair_without_hooks_ms = Date.now() - t3;
    if (sql("without-hooks", "SELECT count(*) FROM pgbench_accounts") !== "100000") {
      throw new Error("the branch the extension paired has not got its parent's data");
    }
    console.log(JSON.stringify(timings));
  } catch (e) {
    await page.screenshot({ path: screenshot.replace(/\.png$/, "-failed.png") }).catch(() => undefined);
    console.error(`ide e2e: ${e.message}`);
    process.exitCode = 1;
  } finally {
    await browser.close();
  }
})();

// test_browser.mjs — the dashboard (GET /) in a real headless Chromium, used
// as a person would: upload a file with the picker, start a job from the
// form, watch it finish, read the summary, the charts and the table, open a
// sample, download the CSV, and make the API refuse something. Everything
// the page shows is checked against what the API answers to the same
// question. Run twice: without tokens, and with a token typed into the
// page's token field.
//
// The browser reaches nothing but the daemon: every other request is
// refused (the page must work with the network cut) and counted.
//
// Needs $LSMI_BUILD/lsmi, Debian's chromium (CHROMIUM=/usr/bin/chromium)
// and puppeteer-core (tests/browser/node_modules, npm ci). A screenshot of
// each run goes to $LSMI_BUILD/test-logs/. Last line: "N passed, N failed".
import { spawn, execFileSync } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import puppeteer from "puppeteer-core";

const BUILD = process.env.LSMI_BUILD || "build";
const LSMI = path.resolve(BUILD, "lsmi");
const CHROMIUM = process.env.CHROMIUM || "/usr/bin/chromium";
const LOGS = path.resolve(BUILD, "test-logs");
const WORK = fs.mkdtempSync(path.join(os.tmpdir(), "lsmi-browser-"));
const WAIT = 120000; // ms: a small fit on a busy 2-core machine

let passed = 0;
let failed = 0;

function check(name, ok, detail) {
  if (ok) {
    passed++;
    console.log(`ok   ${name}`);
  } else {
    failed++;
    console.log(`FAIL ${name}${detail !== undefined ? ": " + detail : ""}`);
  }
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
    s.on("error", reject);
  });
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// One daemon on a free loopback port with its own data directory.
async function startDaemon(name, args) {
  const port = await freePort();
  const dir = path.join(WORK, name);
  fs.mkdirSync(dir);
  const log = fs.openSync(path.join(dir, "daemon.log"), "a");
  const proc = spawn(LSMI, ["serve", "--listen", `127.0.0.1:${port}`,
                            "--data-dir", path.join(dir, "data"), "--quiet",
                            ...args],
                     { stdio: ["ignore", log, log] });
  const base = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 400; i++) {
    try {
      if ((await fetch(base + "/healthz")).ok) return { proc, base, dir, port };
    } catch (e) { /* not yet */ }
    if (proc.exitCode !== null) break;
    await sleep(50);
  }
  throw new Error(`the daemon did not start: ${fs.readFileSync(
    path.join(dir, "daemon.log"), "utf8").slice(-2000)}`);
}

async function stopDaemon(d) {
  if (d.proc.exitCode !== null) return d.proc.exitCode;
  const done = new Promise((r) => d.proc.once("exit", (code) => r(code)));
  d.proc.kill("SIGTERM");
  const t = setTimeout(() => d.proc.kill("SIGKILL"), 30000);
  const code = await done;
  clearTimeout(t);
  return code;
}

async function apiJson(d, token, p) {
  const r = await fetch(d.base + p, {
    headers: token ? { Authorization: "Bearer " + token } : {} });
  if (!r.ok) throw new Error(`${p}: ${r.status} ${await r.text()}`);
  return r.json();
}

async function apiText(d, token, p) {
  const r = await fetch(d.base + p, {
    headers: token ? { Authorization: "Bearer " + token } : {} });
  if (!r.ok) throw new Error(`${p}: ${r.status}`);
  return r.text();
}

async function waitFor(fn, ms, what) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

// The whole walk through the page; `token` null for an open daemon.
async function walk(browser, d, token, label) {
  const page = await browser.newPage();
  await page.setViewport({ width: 1400, height: 1000 });
  const outside = [];
  const consoleErrors = [];
  await page.setRequestInterception(true);
  page.on("request", (req) => {
    const u = new URL(req.url());
    if (u.protocol === "data:" || u.protocol === "blob:" ||
        (u.hostname === "127.0.0.1" && u.port === String(d.port))) {
      req.continue();
    } else {
      outside.push(req.url());
      req.abort();
    }
  });
  page.on("console", (m) => {
    if (m.type() === "error") consoleErrors.push(m.text());
  });
  const downloads = path.join(d.dir, "downloads");
  fs.mkdirSync(downloads);
  const cdp = await page.createCDPSession();
  await cdp.send("Browser.setDownloadBehavior",
                 { behavior: "allow", downloadPath: downloads });

  await page.goto(d.base + "/", { waitUntil: "load" });
  check(`${label}: the page is served with its script and style`,
        await page.$eval("script", (s) => s.src.endsWith("/ui/app.js")));
  if (token) {
    await page.waitForSelector("#token-form:not([hidden])", { timeout: 10000 });
    const msg = await page.$eval("#error", (e) => e.textContent);
    check(`${label}: without a token the page says so`,
          msg.includes("401") && msg.includes("token"), msg);
    await page.type("#token", token);
    await page.click("#token-form button");
  }
  await page.waitForSelector("body[data-ready='1']", { timeout: 20000 });
  check(`${label}: the job form is made from the parameter table`,
        await page.$$eval("#job-params [name]", (els) => els.length) >= 20 &&
        (await page.$$eval("#job-preset option", (o) => o.map((x) => x.value)))
          .join(",") === "published,robust");
  check(`${label}: a preset fills the form`, await page.evaluate(() => {
    const sel = document.getElementById("job-preset");
    sel.value = "robust";
    sel.dispatchEvent(new Event("change"));
    const ens = document.querySelector("#job-params [name=ensemble]").value;
    sel.value = "published";
    sel.dispatchEvent(new Event("change"));
    return ens === "8" &&
      document.querySelector("#job-params [name=ensemble]").value === "1";
  }));

  // Upload with the file picker; the bytes go as multipart/form-data.
  const file = path.join(d.dir, "synth.npz");
  execFileSync(LSMI, ["synth", "gaussian", "--out", file, "--n", "600",
                      "--seed", "3"], { stdio: "ignore" });
  const input = await page.$("#upload-input");
  await input.uploadFile(file);
  await page.waitForFunction(() =>
    /uploaded/.test(document.getElementById("upload-status").textContent) ||
    !document.getElementById("error").hidden, { timeout: 30000 });
  const datasets = await apiJson(d, token, "/v1/datasets");
  check(`${label}: the upload made a dataset`, datasets.total === 1 &&
        datasets.datasets[0].name === "synth.npz" &&
        datasets.datasets[0].bytes === fs.statSync(file).size,
        JSON.stringify(datasets).slice(0, 300));
  const ds = datasets.datasets[0];
  check(`${label}: the dataset is listed`, await page.$eval(
    `#datasets tr[data-id='${ds.id}']`, (tr) => tr.textContent.includes("npz")));
  await page.click(`#datasets tr[data-id='${ds.id}'] .details-btn`);
  await page.waitForSelector("#dataset-details:not([hidden])");
  check(`${label}: its details show its checksum`, (await page.$eval(
    "#dataset-details", (e) => e.textContent)).includes(ds.sha256));

  // A small job from the form.
  await page.click("#job-more");
  await page.evaluate(() => {
    const set = (n, v) => {
      document.querySelector(`#job-params [name=${n}]`).value = v;
    };
    set("epochs_discriminator", "1500");
    set("epochs_entropy", "1500");
    set("threads", "1");
  });
  await page.click("#job-submit");
  const jobId = await waitFor(async () => {
    const jobs = await apiJson(d, token, "/v1/jobs");
    return jobs.total ? jobs.jobs[0].id : null;
  }, 10000, "the job");
  // Live progress: the row moves (epochs, fraction, ETA) while the job runs.
  let sawProgress = "";
  await waitFor(async () => {
    const row = await page.$(`#jobs tr[data-id='${jobId}']`);
    if (!row) return false;
    const st = await row.evaluate((tr) => tr.dataset.state);
    const txt = await row.evaluate((tr) => tr.textContent);
    const m = /epoch (\d+)\/3000/.exec(txt);
    if (st === "running" && m && +m[1] > 0 && +m[1] < 3000 && / (s|min)$/.test(
      await row.$eval(".eta", (td) => td.textContent))) sawProgress = txt;
    return st === "succeeded" || st === "failed" || st === "cancelled";
  }, WAIT, "the job to finish on the page");
  const job = await apiJson(d, token, "/v1/jobs/" + jobId);
  check(`${label}: the job finished on the page as in the API`,
        job.state === "succeeded", job.state);
  check(`${label}: the page showed live progress (epochs, ETA) while it ran`,
        sawProgress !== "", sawProgress);

  // The summary: every number as the API has it.
  await page.waitForSelector("#summary td[data-key='S']", { timeout: 20000 });
  const cells = await page.$$eval("#summary td[data-key]", (tds) =>
    tds.map((td) => [td.closest("tr").dataset.split, td.dataset.key,
                     td.dataset.value]));
  const bad = cells.filter(([split, k, v]) =>
    String(job.summary[split][k]) !== v);
  check(`${label}: the summary equals the API's (${cells.length} numbers)`,
        cells.length === 18 && bad.length === 0, JSON.stringify(bad));

  // Every chart is drawn, with the aggregates' counts.
  await page.waitForSelector("#hist-val-s rect.hbar", { timeout: 20000 });
  const agg = await apiJson(d, token, `/v1/jobs/${jobId}/aggregates?split=all` +
                                      "&column=r,u1,u2,s&bins=30");
  for (const split of ["train", "val"]) {
    for (const col of ["r", "u1", "u2", "s"]) {
      const counts = await page.$$eval(`#hist-${split}-${col} rect.hbar`,
        (rs) => rs.map((r) => Number(r.dataset.count)));
      const want = agg.splits[split].columns[col].histogram.counts;
      check(`${label}: histogram of ${col} (${split}) has the API's counts`,
            JSON.stringify(counts) === JSON.stringify(want),
            `${counts} vs ${want}`);
    }
  }
  const nval = job.summary.val.n;
  const dots = await page.$$eval("#scatter circle", (cs) => cs.length);
  check(`${label}: the scatter has a dot per val sample`,
        dots === Math.min(2000, nval), `${dots} vs ${nval}`);
  const colours = await page.$$eval("#scatter circle",
    (cs) => new Set(cs.map((c) => c.getAttribute("fill"))).size);
  check(`${label}: the scatter is coloured by class`, colours === ds.classes);
  await page.select("#scatter-x", "r");
  await page.select("#scatter-y", "u2");
  await page.waitForFunction(() =>
    document.querySelector("#scatter text:last-of-type") &&
    [...document.querySelectorAll("#scatter text")].some((t) =>
      t.textContent === "u2"), { timeout: 10000 });
  check(`${label}: the scatter redraws for two other columns`, true);
  const means = await page.$$eval("#class-means td[data-key]", (tds) =>
    tds.map((td) => [td.closest("tr").dataset.split,
                     Number(td.closest("tr").dataset.y), td.dataset.key,
                     td.dataset.value]));
  const badMeans = means.filter(([split, y, col, v]) => String(
    agg.splits[split].columns[col].by_class.find((k) => k.y === y).mean) !== v);
  check(`${label}: the means per class equal the API's`,
        means.length === 2 * ds.classes * 4 && badMeans.length === 0,
        JSON.stringify(badMeans).slice(0, 300));

  // The table: sorted by s, descending, by clicking its header twice.
  await page.click("#rows th[data-col='s']");
  await page.waitForSelector("#rows th.sorted[data-col='s']");
  await page.click("#rows th[data-col='s']");
  await page.waitForFunction(() => {
    const th = document.querySelector("#rows th.sorted[data-col='s']");
    return th && th.textContent.includes("▼");
  }, { timeout: 10000 });
  const top = await page.$$eval("#rows tbody tr", (trs) => trs.map((tr) =>
    [Number(tr.dataset.index),
     tr.querySelector("td[data-col='s']").dataset.value]));
  const api = await apiJson(d, token,
                            `/v1/jobs/${jobId}/results?sort=-s&limit=20`);
  check(`${label}: the top rows by s equal the API's`,
        JSON.stringify(top) === JSON.stringify(api.rows.map((r) =>
          [r.index, String(r.s)])), JSON.stringify(top.slice(0, 3)));
  await page.click("#rows-next");
  await page.waitForFunction(() => /rows 21–/.test(
    document.getElementById("rows-range").textContent), { timeout: 10000 });
  check(`${label}: the table pages`, true);
  const first = await page.$eval("#rows tbody tr", (tr) =>
    Number(tr.dataset.index));
  await page.click("#rows tbody tr");
  await page.waitForSelector("#sample:not([hidden])");
  const sample = await page.$eval("#sample", (e) => e.textContent);
  const one = await apiJson(d, token, `/v1/jobs/${jobId}/results/val/${first}`);
  check(`${label}: the sample view shows the sample`,
        sample.includes(`sample ${first} of val`) &&
        sample.includes(String(one.s)), sample.slice(0, 200));

  // Download every row as CSV: the same bytes as the API's export.
  await page.click("#download-csv");
  const name = `${jobId}-all.csv`;
  await waitFor(() => fs.existsSync(path.join(downloads, name)), 20000,
                "the download");
  await sleep(300);
  const got = fs.readFileSync(path.join(downloads, name), "utf8");
  const want = await apiText(d, token,
                             `/v1/jobs/${jobId}/results?split=all&format=csv`);
  check(`${label}: the CSV download has every row of both splits`,
        got === want && got.split("\n").length - 2 ===
          job.summary.train.n + job.summary.val.n,
        `${got.length} vs ${want.length}`);

  const quietConsole = consoleErrors.slice();
  // Errors the API answers are shown as the API says them: a file in no
  // known format, a parameter out of its range.
  const junk = path.join(d.dir, "junk.bin");
  fs.writeFileSync(junk, Buffer.from("\x00\x01\x02 not a dataset ".repeat(20)));
  await (await page.$("#upload-input")).uploadFile(junk);
  await page.waitForSelector("#error:not([hidden])", { timeout: 10000 });
  const e415 = await page.$eval("#error", (e) => e.textContent);
  check(`${label}: an unknown file format shows the 415 and its detail`,
        e415.startsWith("415 Unsupported Media Type") &&
        e415.includes("request req_"), e415);
  await page.evaluate(() => {
    document.querySelector("#job-params [name=epochs_entropy]").value = "0";
  });
  await page.click("#job-submit");
  await page.waitForSelector("#error:not([hidden])", { timeout: 10000 });
  const err = await page.$eval("#error", (e) => e.textContent);
  check(`${label}: a refused job shows the problem (422, the field)`,
        err.includes("422") && err.includes("params.epochs_entropy") &&
        err.includes("request req_"), err);

  // Cancel a long job from its row.
  await page.evaluate(() => {
    document.querySelector("#job-params [name=epochs_entropy]").value = "10000";
    document.querySelector("#job-params [name=epochs_discriminator]").value =
      "10000";
  });
  await page.click("#job-submit");
  const longId = await waitFor(async () => {
    const jobs = await apiJson(d, token, "/v1/jobs");
    return jobs.total === 2 ? jobs.jobs[0].id : null;
  }, 10000, "the long job");
  await page.waitForSelector(`#jobs tr[data-id='${longId}'] .cancel-btn`,
                             { timeout: 20000 });
  // (the rows are redrawn as events arrive: click in the page, not by handle)
  await page.$eval(`#jobs tr[data-id='${longId}'] .cancel-btn`, (b) => b.click());
  await waitFor(async () => (await apiJson(d, token, "/v1/jobs/" + longId))
    .state === "cancelled", 30000, "the cancel");
  await page.waitForSelector(`#jobs tr[data-id='${longId}'][data-state='cancelled']`,
                             { timeout: 20000 });
  check(`${label}: cancel stops a running job`, true);

  await page.$eval(`#jobs tr[data-id='${jobId}']`, (tr) => tr.click());
  await page.waitForSelector("#hist-val-s rect.hbar", { timeout: 20000 });
  fs.mkdirSync(LOGS, { recursive: true });
  const shot = path.join(LOGS, `browser-dashboard${token ? "-tokens" : ""}.png`);
  await page.screenshot({ path: shot, fullPage: true });
  check(`${label}: screenshot ${shot}`, fs.statSync(shot).size > 10000);
  check(`${label}: the page asked for nothing beyond the daemon`,
        outside.length === 0, outside.join(" "));
  check(`${label}: no error in the page's console but those provoked`,
        quietConsole.filter((t) => !t.includes("401")).length === 0 &&
        consoleErrors.every((t) => /40[0-9]|41[0-9]|42[0-9]/.test(t)),
        consoleErrors.join(" | "));
  await page.close();
}

async function main() {
  let browser = null;
  const daemons = [];
  try {
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      userDataDir: path.join(WORK, "profile"),
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--disable-dev-shm-usage"],
    });
    const open = await startDaemon("open", []);
    daemons.push(open);
    await walk(browser, open, null, "open");
    check("open: the daemon stops cleanly", (await stopDaemon(open)) === 0);
    const tokens = path.join(WORK, "tokens.txt");
    fs.writeFileSync(tokens, "browser-secret-0123 alice\n");
    const closed = await startDaemon("tokens", ["--tokens-file", tokens]);
    daemons.push(closed);
    await walk(browser, closed, "browser-secret-0123", "tokens");
    check("tokens: the daemon stops cleanly", (await stopDaemon(closed)) === 0);
  } catch (e) {
    check("the walk through the page", false, e.stack || e);
    for (const d of daemons) {
      try {
        console.log(`--- daemon log (${d.dir}):\n` + fs.readFileSync(
          path.join(d.dir, "daemon.log"), "utf8").slice(-3000));
      } catch (e2) { /* none */ }
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
    for (const d of daemons) await stopDaemon(d).catch(() => {});
    fs.rmSync(WORK, { recursive: true, force: true });
  }
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
}

main();

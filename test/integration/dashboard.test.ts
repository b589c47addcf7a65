// The live dashboard on the metrics port, in a real headless browser (Debian's chromium driven
// by puppeteer-core): the page renders the pools and servers of a running proxy over two real
// redis backends, shows traffic sent through the proxy, turns a server "ejected" when its backend
// dies and clients keep asking, and shows a reload (generation, new server, history) within a few
// seconds, all without a reload of the page. Then an accessibility pass (language, labels,
// captions, header scopes, text contrast in the light and the dark scheme) and a phone-sized
// viewport with nothing wider than the screen. /dashboard.json is checked on its own as the
// scripts' endpoint. Under --workers 2 the page also lists each worker (pid, memory, CPU).
// DASHBOARD_SCREENSHOT=path writes a screenshot (docs/dashboard.png).

import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync } from "node:fs";
import puppeteer, { type Browser, type Page } from "puppeteer-core";
import { startRedis, type Backend } from "../helpers/backends.ts";
import { RawClient } from "../helpers/client.ts";
import { poolYaml, serverLine } from "../helpers/config.ts";
import { freePort } from "../helpers/ports.ts";
import { TARGET } from "../helpers/proxy.ts";
import { ReloadableProxy } from "../helpers/reload.ts";
import { pipeline, respFrame, type Bytes } from "../helpers/resp.ts";
import { startWorkers } from "../helpers/workers.ts";

setDefaultTimeout(60_000);

const CHROMIUM = "/usr/bin/chromium";
/** The page polls every second: a change must show within this. */
const SHOWS_WITHIN_MS = 5000;

let backends: Backend[] = [];
let proxy: ReloadableProxy;
let browser: Browser;
let page: Page;
let client: RawClient;
const listen = `127.0.0.1:${freePort()}`;

const config = (servers: Backend[]): string =>
  poolYaml(
    "cache",
    {
      listen,
      redis: true,
      hash: "fnv1a_64",
      distribution: "ketama",
      timeout: 500,
      auto_eject_hosts: true,
      server_failure_limit: 1,
      server_retry_timeout: 60_000,
    },
    servers.map((b, i) => serverLine(b.address, 1, `node-${i}`)),
  );

/** Sends `commands` as one pipeline through the proxy; resolves with their replies (errors
 *  included: a request to a dead backend gets one). */
async function send(commands: Bytes[][]): Promise<string[]> {
  await client.send(pipeline(commands));
  return (await client.readReplies(commands.length, respFrame)).map((r) => r.toString());
}

/** The text of `selector`'s first match, trimmed. */
const text = (selector: string): Promise<string> => page.$eval(selector, (e) => (e.textContent ?? "").trim());

/** Waits until `[data-server=name]` in the pool section shows `state`. */
const serverState = (name: string, state: string) =>
  page.waitForSelector(`[data-pool="cache"] tr[data-server="${name}"][data-state="${state}"]`, { timeout: SHOWS_WITHIN_MS });

describe.skipIf(TARGET !== "buncracker")("dashboard in a browser", () => {
  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: run scripts/deps.sh`);
    backends = await Promise.all([startRedis(), startRedis(), startRedis()]);
    proxy = await ReloadableProxy.start(config(backends.slice(0, 2)));
    client = await RawClient.connect({ host: "127.0.0.1", port: Number(listen.split(":")[1]) });
    browser = await puppeteer.launch({
      executablePath: CHROMIUM,
      headless: true,
      // Root in a container has no user namespaces for chromium's sandbox.
      args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
    });
    page = await browser.newPage();
    await page.setViewport({ width: 1100, height: 900 });
  });

  afterAll(async () => {
    client?.close();
    await browser?.close();
    await proxy?.stop();
    await Promise.all(backends.map((b) => b.stop()));
  });

  test("renders the running proxy's pool, its servers, addresses and traffic", async () => {
    const replies = await send(Array.from({ length: 200 }, (_, i) => ["SET", `dash:${i}`, `v${i}`]));
    expect(new Set(replies)).toEqual(new Set(["+OK\r\n"]));
    await page.goto(`http://127.0.0.1:${proxy.metricsPort}/`);
    await page.waitForSelector('[data-pool="cache"]', { timeout: SHOWS_WITHIN_MS });
    expect(await text("#pool-cache")).toContain("Pool cache");
    for (const [i, b] of backends.slice(0, 2).entries()) {
      await serverState(`node-${i}`, "up");
      expect(await text(`tr[data-server="node-${i}"] td`)).toBe(b.address);
    }
    expect(await text("#about")).toContain("version 0.1.0");
    // 200 requests within the 5 s rate window: a non-zero request rate.
    await page.waitForFunction(() => Number(document.getElementById("t-rps")?.textContent) > 0, { timeout: SHOWS_WITHIN_MS });
    expect(await text("#status")).toContain("live");
  });

  test("an ejection shows within a few seconds", async () => {
    await backends[1]!.kill();
    // The lost connection, or a request for a key on node-1, is its one failure
    // (server_failure_limit 1): it is ejected, and every request still gets a reply.
    expect(await send(Array.from({ length: 50 }, (_, i) => ["GET", `eject:${i}`]))).toHaveLength(50);
    await serverState("node-1", "ejected");
    await serverState("node-0", "up");
  });

  test("a reload shows within a few seconds: generation, the added server, the history; the ejected server stays ejected", async () => {
    const next = config(backends);
    expect(await proxy.signalReload(next)).toEqual([expect.stringMatching(/^reloaded/)]);
    await page.waitForFunction(() => document.getElementById("t-gen")?.textContent === "2", { timeout: SHOWS_WITHIN_MS });
    await serverState("node-2", "up");
    expect(await text('tr[data-server="node-2"] td')).toBe(backends[2]!.address);
    await serverState("node-1", "ejected");
    expect(await text("#reloads tbody tr")).toContain("applied");
    expect(await text("#reloads tbody tr")).toContain(`+server ${backends[2]!.address}`);
    if (process.env.DASHBOARD_SCREENSHOT) {
      await send(Array.from({ length: 300 }, (_, i) => ["GET", `dash:${i % 200}`]));
      await Bun.sleep(1500);
      await page.screenshot({ path: process.env.DASHBOARD_SCREENSHOT, fullPage: true });
    }
  });

  test("/dashboard.json: the same data for scripts", async () => {
    const res = await fetch(`http://127.0.0.1:${proxy.metricsPort}/dashboard.json`);
    expect(res.headers.get("content-type")).toBe("application/json");
    const data = (await res.json()) as {
      config: { generation: number; reloads: { applied: boolean }[] };
      pools: { name: string; servers: { name: string; address: string; state: string }[] }[];
    };
    expect(data.config.generation).toBe(2);
    expect(data.config.reloads.map((r) => r.applied)).toEqual([true]);
    expect(data.pools.map((p) => p.name)).toEqual(["cache"]);
    expect(data.pools[0]!.servers.map((s) => [s.name, s.address, s.state])).toEqual([
      ["node-0", backends[0]!.address, "up"],
      ["node-1", backends[1]!.address, "ejected"],
      ["node-2", backends[2]!.address, "up"],
    ]);
  });

  for (const scheme of ["light", "dark"] as const) {
    test(`accessibility, ${scheme} scheme: language, labels, captions, header scopes, contrast >= 4.5`, async () => {
      await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: scheme }]);
      const report = await page.evaluate(() => {
        const problems: string[] = [];
        if (!document.documentElement.lang) problems.push("no lang on <html>");
        if (!document.title) problems.push("no <title>");
        for (const t of document.querySelectorAll("table")) if (!t.caption?.textContent?.trim()) problems.push("a table without caption");
        for (const th of document.querySelectorAll("th")) if (!th.getAttribute("scope")) problems.push(`th "${th.textContent}" without scope`);
        for (const s of document.querySelectorAll("section")) {
          const id = s.getAttribute("aria-labelledby");
          if (!id || !document.getElementById(id)?.textContent?.trim()) problems.push("a section without a heading label");
        }
        for (const svg of document.querySelectorAll("svg")) if (!svg.getAttribute("aria-label")) problems.push("an svg without aria-label");
        if (!document.querySelector('[role="status"][aria-live]')) problems.push("no live status region");
        // WCAG contrast of every element that holds text, against the first opaque background up
        // its ancestors.
        const rgb = (c: string): number[] => (c.match(/[\d.]+/g) ?? []).map(Number);
        const lum = (c: number[]): number => {
          const [r, g, b] = c.slice(0, 3).map((v) => {
            const s = v / 255;
            return s <= 0.03928 ? s / 12.92 : ((s + 0.055) / 1.055) ** 2.4;
          });
          return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
        };
        const background = (e: Element | null): number[] => {
          for (; e; e = e.parentElement) {
            const c = rgb(getComputedStyle(e).backgroundColor);
            if (c.length === 3 || (c.length === 4 && c[3]! > 0.9)) return c;
          }
          return [255, 255, 255];
        };
        let checked = 0;
        let worst = 21;
        for (const e of document.body.querySelectorAll("*")) {
          const own = [...e.childNodes].some((n) => n.nodeType === Node.TEXT_NODE && n.textContent!.trim() !== "");
          if (!own) continue;
          const a = lum(rgb(getComputedStyle(e).color));
          const b = lum(background(e));
          const ratio = (Math.max(a, b) + 0.05) / (Math.min(a, b) + 0.05);
          checked++;
          worst = Math.min(worst, ratio);
          if (ratio < 4.5) problems.push(`contrast ${ratio.toFixed(2)} for "${e.textContent!.trim().slice(0, 30)}"`);
        }
        return { problems, checked, worst };
      });
      expect(report.problems).toEqual([]);
      expect(report.checked).toBeGreaterThan(30);
    });
  }

  test("on a phone-sized screen nothing is wider than the screen but the server table, which scrolls", async () => {
    await page.emulateMediaFeatures([{ name: "prefers-color-scheme", value: "light" }]);
    await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
    await page.reload();
    await page.waitForSelector('[data-pool="cache"] tr[data-server="node-2"]', { timeout: SHOWS_WITHIN_MS });
    const widths = await page.evaluate(() => ({
      page: document.documentElement.scrollWidth,
      screen: window.innerWidth,
      scrollers: [...document.querySelectorAll(".scroll")].map((s) => getComputedStyle(s).overflowX),
    }));
    expect(widths.page).toBeLessThanOrEqual(widths.screen);
    expect(new Set(widths.scrollers)).toEqual(new Set(["auto"]));
  });

  test("a single process has no Workers table; under --workers 2 it lists each worker: its pid, memory, CPU and start time", async () => {
    expect(await page.$eval("#workers", (e) => (e as HTMLElement).hidden)).toBe(true);
    const metricsPort = freePort();
    const sup = await startWorkers(
      poolYaml("w", { listen: `127.0.0.1:${freePort()}`, redis: true }, [serverLine(backends[0]!.address, 1, "node-0")]),
      2,
      { args: ["--metrics-port", String(metricsPort)] },
    );
    try {
      const pids = await sup.workers();
      const tab = await browser.newPage();
      await tab.goto(`http://127.0.0.1:${metricsPort}/`);
      await tab.waitForSelector('#workers tr[data-worker="1"]', { visible: true, timeout: SHOWS_WITHIN_MS });
      const rows = await tab.$$eval("#workers tbody tr", (trs) => trs.map((tr) => [...tr.children].map((c) => (c.textContent ?? "").trim())));
      expect(rows.map((r) => r.slice(0, 2))).toEqual(pids.map((pid, i) => [String(i), String(pid)]));
      for (const r of rows) expect(r.slice(2, 5)).toEqual([expect.stringMatching(/^\d+\.\d MB$/), expect.stringMatching(/^\d+\.\d MB$/), expect.stringMatching(/^\d+\.\d s$/)]);
      // The start time, as the page shows times (the browser's locale): hours, minutes, seconds.
      for (const r of rows) expect(r[6]).toMatch(/\d{1,2}:\d{2}:\d{2}/);
      await tab.close();
    } finally {
      await sup.proxy.stop();
    }
  });
});

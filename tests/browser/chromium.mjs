// One way to start Debian's headless Chromium for the page's tests and benchmarks: a fresh
// profile, the flags this closed network needs (no background networking, no QUIC), and
// `extraArgs` (e.g. --host-resolver-rules for a LAN-style origin). `close()` ends the browser
// and removes the profile.
import { chromium } from 'playwright-core';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export async function launch({ viewport = { width: 1280, height: 900 }, extraArgs = [] } = {}) {
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'edgecam-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-quic', ...extraArgs],
    viewport,
  });
  const close = async () => {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  };
  return { context, close };
}

// A driver over a playwright page for the scenario helpers (mse-scenario.mjs): goto, eval,
// click, fill, screenshot. The page's console errors are pushed into `errors` (a test
// checks there are none), its errors and warnings go to the log.
export function pageDriver(page, errors = [], timeout = 30000) {
  page.on('console', (m) => {
    if (m.type() === 'error') errors.push(m.text());
    if (m.type() === 'error' || m.type() === 'warning') console.log('page:', m.text());
  });
  return {
    goto: (url) => page.goto(url),
    eval: (fn, arg) => page.evaluate(fn, arg),
    click: (sel) => page.click(sel, { timeout }),
    fill: (sel, text) => page.fill(sel, text, { timeout }),
    screenshot: (file) => page.screenshot({ path: file }),
  };
}

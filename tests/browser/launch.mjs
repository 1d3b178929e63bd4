// What every browser check starts with: Debian's chromium (CHROMIUM, default
// /usr/bin/chromium) driven by playwright-core, one page, and the page's script
// errors collected for the check to assert on; `options` go to newPage (a zone, a
// viewport). Close `browser` when done.
import { chromium } from "playwright-core";

export async function openPage(options = {}) {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
    headless: true,
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 }, ...options });
  const errors = [];
  page.on("pageerror", (error) => errors.push(String(error)));
  return { browser, page, errors };
}

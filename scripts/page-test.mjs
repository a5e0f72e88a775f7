// omg-server's web page in headless Chromium (playwright-core): upload a photo,
// click a point and drag a box, run interactive segmentation and a streamed chat with a
// forced [SEG], and check that masks are listed and drawn over the photo. Writes a
// screenshot. Run by scripts/page-test.sh, which starts the server.
//
//   node page-test.mjs URL PHOTO SCREENSHOT
import { chromium } from "playwright-core";

const [url, photo, shot] = process.argv.slice(2);
const fail = (m) => { console.error(`page test FAILED: ${m}`); process.exit(1); };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 720 } });
page.on("pageerror", (e) => fail(`a script error on the page: ${e.message}`));
await page.goto(url);
await page.waitForFunction(() => document.getElementById("model").textContent !== "…");
await page.setInputFiles("#file", photo);
await page.waitForSelector("#canvas:not([hidden])");

// Pixels of the canvas that differ from the photo drawn alone.
const changed = () => page.evaluate(() => {
  const c = document.getElementById("canvas");
  const plain = document.createElement("canvas");
  plain.width = c.width; plain.height = c.height;
  const img = new Image();
  return new Promise((done) => {
    img.onload = () => {
      plain.getContext("2d").drawImage(img, 0, 0);
      const a = plain.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      const b = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      let n = 0;
      for (let i = 0; i < a.length; i += 4) if (a[i] !== b[i] || a[i + 1] !== b[i + 1] || a[i + 2] !== b[i + 2]) n++;
      done(n);
    };
    img.src = document.getElementById("file").files.length ? URL.createObjectURL(document.getElementById("file").files[0]) : "";
  });
});

const box = await page.locator("#canvas").boundingBox();
const at = (fx, fy) => [box.x + box.width * fx, box.y + box.height * fy];
// a click: a point prompt
await page.mouse.click(...at(0.45, 0.5));
// a drag: a box prompt
await page.mouse.move(...at(0.1, 0.15));
await page.mouse.down();
await page.mouse.move(...at(0.3, 0.4), { steps: 5 });
await page.mouse.move(...at(0.55, 0.75), { steps: 5 });
await page.mouse.up();
const regions = await page.locator("#regions").textContent();
if (!/mark 1: point/.test(regions) || !/region 2: box/.test(regions)) fail(`regions not taken: ${regions}`);

async function run(expectMasks) {
  const before = Number(await page.evaluate(() => document.body.dataset.done || 0));
  await page.click("#run");
  await page.waitForFunction((n) => Number(document.body.dataset.done || 0) > n, before, { timeout: 120000 });
  const error = await page.locator("#error").textContent();
  if (error) fail(`the page shows an error: ${error}`);
  const areas = await page.$$eval("#legend li", (lis) => lis.map((li) => Number(li.dataset.area)));
  if (areas.length !== expectMasks || !areas.every((a) => a > 0)) fail(`expected ${expectMasks} non-empty masks, got areas ${areas}`);
  const n = await changed();
  if (n === 0) fail("no mask is drawn over the photo");
  return { areas, n };
}

await page.selectOption("#task", "interactive");
const interactive = await run(2);
console.log(`interactive: masks of ${interactive.areas.join(", ")} px; ${interactive.n} px drawn`);

await page.selectOption("#task", "chat");
await page.fill("#prompt", "What is in <region> near <mark>?");
await page.fill("#max", "12");
await page.fill("#force", "3");
const chat = await run(1);
const answer = await page.locator("#answer").textContent();
if (!answer.includes("[SEG]")) fail(`the streamed answer lacks the forced [SEG]: ${answer}`);
console.log(`chat: ${answer.length} characters streamed, mask of ${chat.areas[0]} px; ${chat.n} px drawn`);
await page.screenshot({ path: shot });
console.log(`screenshot: ${shot}`);
await browser.close();

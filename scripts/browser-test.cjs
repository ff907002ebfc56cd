// The browser half of scripts/browser-test: node browser-test.cjs URL CHROMIUM
const { chromium } = require('playwright-core');
const fs = require('fs');
const os = require('os');
const path = require('path');

const [url, executablePath] = process.argv.slice(2);
const results = [];
function check(name, ok, detail) {
  results.push(ok);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : ': ' + detail}`);
}

(async () => {
  const spec = await (await fetch(`${url}/openapi.json`)).json();
  const operations = Object.values(spec.paths)
    .flatMap((item) => Object.entries(item).filter(([method]) => method !== 'parameters'))
    .map(([, op]) => op.operationId);

  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'privx-docs-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    viewport: { width: 1300, height: 1000 },
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await context.newPage();
    const response = await page.goto(`${url}/docs`);
    check('the page loads', response.status() === 200, `status ${response.status()}`);
    check('the page renders its title', (await page.locator('h1').textContent()).includes('PrivX'), 'no title');

    const listed = await page.locator('article.op:not(.schema)').evaluateAll((els) => els.map((e) => e.id.slice(3)));
    const missing = operations.filter((id) => !listed.includes(id));
    check(`all ${operations.length} operations are listed`, missing.length === 0 && listed.length === operations.length,
      `missing ${missing}, listed ${listed.length}`);
    fs.mkdirSync('target', { recursive: true });
    await page.screenshot({ path: 'target/docs.png' });

    await page.fill('#search', 'password');
    const shown = await page.locator('article.op:not(.schema):visible').evaluateAll((els) => els.map((e) => e.id.slice(3)));
    const expected = operations.filter((id) => {
      const [p, item] = Object.entries(spec.paths).find(([, item]) => Object.values(item).some((op) => op.operationId === id));
      const [method, op] = Object.entries(item).find(([, op]) => op.operationId === id);
      return `${method} ${p} ${id} ${op.summary || ''}`.toLowerCase().includes('password');
    });
    check('the search box filters the operations', JSON.stringify(shown.sort()) === JSON.stringify(expected.sort()),
      `shown ${shown}, expected ${expected}`);
    await page.screenshot({ path: 'target/docs-search.png' });

    await page.fill('#search', 'no-such-operation-anywhere');
    check('a search that matches nothing hides everything',
      (await page.locator('article.op:visible').count()) === 0, 'something stayed visible');
  } finally {
    await context.close();
    fs.rmSync(profile, { recursive: true, force: true });
  }
  const failed = results.filter((ok) => !ok).length;
  console.log(`browser: ${results.length - failed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
})().catch((error) => {
  console.error(error);
  process.exit(1);
});

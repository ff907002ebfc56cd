// The browser half of scripts/browser-test: node browser-test.cjs URL CHROMIUM, with the
// server's credentials in PRIVX_OAUTH_CLIENT_ID, PRIVX_OAUTH_CLIENT_SECRET and
// PRIVX_ADMIN_PASSWORD, and an admin bearer token in PRIVX_TOKEN (the variables the page's
// curl lines name, so they run as a reader would run them).
const { chromium } = require('playwright-core');
const { execFileSync } = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const [url, executablePath] = process.argv.slice(2);
const results = [];
function check(name, ok, detail) {
  results.push(ok);
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${name}${ok ? '' : ': ' + detail}`);
}

// The page renders the spec's Markdown and offers a copy button on the curl lines.
async function reading(page) {
  const code = page.locator('#user_list .description code', { hasText: 'username' });
  check('Markdown in a description renders (`username` becomes <code>)', (await code.count()) === 1,
    await page.locator('#user_list .description').innerHTML());
  const described = await page.locator('article.op .description').allTextContents();
  check('no description shows raw backticks', described.every((text) => !text.includes('`')),
    described.find((text) => text.includes('`')));

  const curl = page.locator('#user_list pre.curl');
  await page.locator('#user_list button.copy').click();
  const copied = await page.evaluate(() => navigator.clipboard.readText());
  check('the copy button copies the curl line', copied === await curl.textContent(), `copied ${copied}`);
}

// Runs a curl line as shown on the page, with credentials in the environment it names;
// answers the status and the body.
function runCurl(line) {
  const out = execFileSync('bash', ['-c', `${line} -w '\\n%{http_code}'`], { env: process.env }).toString();
  const at = out.lastIndexOf('\n');
  return { status: Number(out.slice(at + 1)), body: out.slice(0, at) };
}

// The copy-ready curl lines work against the server serving the page.
async function curlLines(page) {
  const list = await page.locator('#user_list pre.curl').textContent();
  check('the user_list curl line is copy-ready', list.startsWith(`curl -sS -X GET '${url}/local-user-store/api/v1/users'`)
    && list.includes('Authorization: Bearer $PRIVX_TOKEN'), list);
  const listed = runCurl(list);
  check('the user_list curl line, run, lists the users', listed.status === 200
    && JSON.parse(listed.body).items.some((user) => user.username === 'alice'), JSON.stringify(listed));

  const token = await page.locator('#token_create pre.curl').textContent();
  const answered = runCurl(token);
  check('the token_create curl line, run, gets a token', answered.status === 200
    && JSON.parse(answered.body).access_token, JSON.stringify(answered));
}

// Sends an operation's "try it" form as it is (after `edit`) and answers the shown reply.
async function send(page, id, edit = async () => {}) {
  const details = page.locator(`#${id} details.try`);
  await details.locator('summary').click();
  await edit(details);
  await details.locator('button[type=submit]').click();
  const status = details.locator('.reply-status');
  await status.filter({ hasText: /\u2192 \d{3}/ }).waitFor();
  return {
    status: await status.textContent(),
    headers: await details.locator('.reply-headers').textContent(),
    body: await details.locator('.reply-body').textContent(),
  };
}

// Logs in through the page, creates a user and lists it with "try it".
async function tryIt(page) {
  await page.fill('#login-form [name=client_id]', process.env.PRIVX_OAUTH_CLIENT_ID);
  await page.fill('#login-form [name=client_secret]', process.env.PRIVX_OAUTH_CLIENT_SECRET);
  await page.fill('#login-form [name=username]', 'admin');
  await page.fill('#login-form [name=password]', process.env.PRIVX_ADMIN_PASSWORD);
  await page.click('#login-form button[type=submit]');
  const status = page.locator('#login-status');
  await status.filter({ hasText: /Logged in|failed/ }).waitFor();
  check('the login box logs in', (await status.textContent()).startsWith('Logged in as admin'), await status.textContent());
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }) + document.cookie);
  check('the token is kept in memory only', stored === '{}{}', stored);

  const created = await send(page, 'user_create');
  check('try it: user_create answers 201 with the new id', created.status.includes('\u2192 201')
    && /^location: /m.test(created.headers) && JSON.parse(created.body).id, JSON.stringify(created));
  const listed = await send(page, 'user_list');
  check('try it: user_list shows the created user', listed.status.includes('\u2192 200')
    && JSON.parse(listed.body).items.some((user) => user.username === 'carol'), JSON.stringify(listed));
  await page.locator('#user_list').scrollIntoViewIfNeeded();
  await page.locator('#user_list button.copy', { hasText: /^Copy$/ }).waitFor();
  // The README's picture: a test run leaves the committed copy alone (it changes with every
  // run's ids and times); `cp target/docs-try-it.png docs/api-reference.png` refreshes it.
  await page.screenshot({ path: 'target/docs-try-it.png' });

  const failed = await send(page, 'user_view', (details) => details.locator('[name=user_id]').fill('not-a-uuid'));
  check('try it: an error shows the PrivX envelope as it came', failed.status.includes('\u2192 400')
    && JSON.parse(failed.body).error_code, JSON.stringify(failed));
}

// A deep link scrolls to its operation, and without JavaScript the page still reads in full.
async function deepLinkAndNoScript(context) {
  const page = await context.newPage();
  await page.goto(`${url}/docs#user_create`);
  const target = await page.evaluate(() => [document.querySelector(':target')?.id, scrollY]);
  check('a deep link (/docs#user_create) shows its operation', target[0] === 'user_create' && target[1] > 0, target);

  const cdp = await context.newCDPSession(page);
  await cdp.send('Emulation.setScriptExecutionDisabled', { value: true });
  await page.goto(`${url}/docs`);
  const ops = await page.locator('article.op:not(.schema):visible').count();
  const curls = await page.locator('article.op pre.curl:visible').count();
  const code = await page.locator('#user_list .description code').count();
  check('without JavaScript every operation, its curl line and Markdown still show',
    ops === curls && ops > 0 && code > 0, `${ops} operations, ${curls} curl lines, ${code} code`);
  await page.close();
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
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      '--disable-quic'],
  });
  await context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: url });
  try {
    const page = await context.newPage();
    const response = await page.goto(`${url}/docs`);
    check('the page loads', response.status() === 200, `status ${response.status()}`);
    check('the page renders its title', (await page.locator('h1').textContent()).includes('PrivX'), 'no title');

    const listed = await page.locator('article.op:not(.schema)').evaluateAll((els) => els.map((e) => e.id));
    const missing = operations.filter((id) => !listed.includes(id));
    check(`all ${operations.length} operations are listed`, missing.length === 0 && listed.length === operations.length,
      `missing ${missing}, listed ${listed.length}`);
    fs.mkdirSync('target', { recursive: true });
    await page.screenshot({ path: 'target/docs.png' });

    await page.fill('#search', 'password');
    const shown = await page.locator('article.op:not(.schema):visible').evaluateAll((els) => els.map((e) => e.id));
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
    await page.fill('#search', '');

    await reading(page);
    await curlLines(page);
    await tryIt(page);
    await deepLinkAndNoScript(context);
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

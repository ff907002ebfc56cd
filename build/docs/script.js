// Everything here is an addition to a page that reads in full without it: the search box, the
// serving origin in the curl lines, copy buttons, and "try it" against the serving server.
// The token lives in `token` only: never in storage, cookies or the URL.
const search = document.getElementById('search');
function filter() {
  const q = search.value.trim().toLowerCase();
  let shown = 0;
  document.querySelectorAll('article.op').forEach(a => {
    const hit = !q || a.dataset.search.includes(q);
    a.hidden = !hit;
    if (hit && !a.classList.contains('schema')) shown++;
  });
  document.querySelectorAll('section.tag').forEach(s => {
    s.hidden = !s.querySelector('article.op:not([hidden])');
  });
  document.getElementById('shown').textContent = shown + ' operations shown';
}
search.addEventListener('input', filter);
search.hidden = false;
filter();

if (location.protocol.startsWith('http')) {
  document.querySelectorAll('.origin').forEach(e => { e.textContent = location.origin; });
}

document.querySelectorAll('button.copy').forEach(button => {
  button.hidden = false;
  button.addEventListener('click', async () => {
    const text = button.parentElement.querySelector('pre').textContent;
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      // Without clipboard permission: select the text and copy the selection.
      const range = document.createRange();
      range.selectNodeContents(button.parentElement.querySelector('pre'));
      getSelection().removeAllRanges();
      getSelection().addRange(range);
      document.execCommand('copy');
    }
    button.textContent = 'Copied';
    setTimeout(() => { button.textContent = 'Copy'; }, 1500);
  });
});

let token = null;
const login = document.getElementById('login-form');
function basic(form) {
  const pair = new TextEncoder().encode(`${form.client_id.value}:${form.client_secret.value}`);
  return 'Basic ' + btoa(String.fromCharCode(...pair));
}
function setStatus(text) { document.getElementById('login-status').textContent = text; }
if (login) {
  document.getElementById('login').hidden = false;
  login.addEventListener('submit', async event => {
    event.preventDefault();
    token = null;
    const body = new URLSearchParams({
      grant_type: 'password', username: login.username.value, password: login.password.value,
    });
    try {
      const response = await fetch(login.dataset.tokenUrl, {
        method: 'POST', body,
        headers: { Authorization: basic(login), 'Content-Type': 'application/x-www-form-urlencoded' },
      });
      const reply = await response.json();
      if (response.ok && reply.access_token) {
        token = reply.access_token;
        setStatus(`Logged in as ${login.username.value}; the token expires in ${reply.expires_in} s.`);
      } else {
        setStatus(`Login failed (${response.status}): ${JSON.stringify(reply)}`);
      }
    } catch (error) {
      setStatus(`Login failed: ${error}`);
    }
  });
  document.getElementById('logout').addEventListener('click', () => {
    token = null;
    setStatus('Not logged in.');
  });
}

// Sends one "try it" form as the request its fields describe and shows the reply as it came.
async function send(details, form) {
  let path = details.dataset.path;
  const query = new URLSearchParams();
  const headers = {};
  let body;
  form.querySelectorAll('[data-in]').forEach(field => {
    const where = field.dataset.in;
    if (where === 'path') path = path.replace(`{${field.name}}`, encodeURIComponent(field.value));
    else if (where === 'query' && field.value !== '') query.append(field.name, field.value);
    else if (where === 'body' && field.value.trim() !== '') {
      body = field.value;
      headers['Content-Type'] = field.dataset.media;
    }
  });
  if (details.dataset.auth === 'bearer' && token) headers.Authorization = `Bearer ${token}`;
  if (details.dataset.auth === 'basic' && login) headers.Authorization = basic(login);
  const url = path + (query.toString() ? `?${query}` : '');
  const reply = details.querySelector('.reply');
  reply.hidden = false;
  reply.className = 'reply';
  try {
    const response = await fetch(url, { method: details.dataset.method, headers, body });
    const text = await response.text();
    let shown = text;
    try { shown = JSON.stringify(JSON.parse(text), null, 2); } catch (_) { /* not JSON */ }
    reply.classList.add(response.ok ? 'ok' : 'error');
    reply.querySelector('.reply-status').textContent =
      `${details.dataset.method} ${url} \u2192 ${response.status} ${response.statusText}`;
    reply.querySelector('.reply-headers').textContent =
      [...response.headers].map(([name, value]) => `${name}: ${value}`).join('\n');
    reply.querySelector('.reply-body').textContent = shown;
  } catch (error) {
    reply.classList.add('error');
    reply.querySelector('.reply-status').textContent = `${details.dataset.method} ${url} failed: ${error}`;
    reply.querySelector('.reply-headers').textContent = '';
    reply.querySelector('.reply-body').textContent = '';
  }
}
document.querySelectorAll('details.try').forEach(details => {
  details.hidden = false;
  const form = details.querySelector('form');
  form.addEventListener('submit', event => {
    event.preventDefault();
    send(details, form);
  });
});

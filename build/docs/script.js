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
filter();

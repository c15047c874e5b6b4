// The paper demo: example queries, and an in-page view of the abstract a result links to
// (`#paper-<id>`). Text is inserted as text only.
const search = document.querySelector('cairn-search');
let papers = null;

async function loadPapers() {
  if (!papers) {
    const text = await (await fetch('data/papers.jsonl')).text();
    papers = new Map();
    for (const line of text.split('\n')) {
      if (!line.trim()) continue;
      const p = JSON.parse(line);
      papers.set(String(p._id), p);
    }
  }
  return papers;
}

async function showPaper() {
  const view = document.getElementById('paper');
  const m = /^#paper-(.+)$/.exec(location.hash);
  if (!m) {
    view.hidden = true;
    return;
  }
  let p;
  try {
    p = (await loadPapers()).get(decodeURIComponent(m[1]));
  } catch (e) {
    document.getElementById('paper-title').textContent = 'The abstract could not be loaded';
    view.querySelector('.paper-id').textContent = '';
    document.getElementById('paper-text').textContent = e.message;
    view.hidden = false;
    return;
  }
  if (!p) {
    view.hidden = true;
    return;
  }
  document.getElementById('paper-title').textContent = p.title;
  view.querySelector('.paper-id').textContent = `arXiv abstract · ${p._id}`;
  document.getElementById('paper-text').textContent = p.text;
  view.hidden = false;
  view.scrollIntoView({ block: 'start' });
}

window.addEventListener('hashchange', showPaper);
showPaper();

document.getElementById('paper-close').addEventListener('click', (e) => {
  e.preventDefault();
  history.pushState('', document.title, location.pathname + location.search);
  showPaper();
});

for (const a of document.querySelectorAll('a[data-q]')) {
  a.addEventListener('click', (e) => {
    e.preventDefault();
    const input = search.shadowRoot.querySelector('input');
    input.value = a.dataset.q;
    input.dispatchEvent(new Event('input'));
    input.focus();
  });
}

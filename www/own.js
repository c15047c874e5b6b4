// The "search your own files" page: picks and drops files (folders where the browser allows),
// hands them to <cairn-search own>, whose worker reads, embeds and indexes them, and shows the
// worker's progress and per-file notes. File contents are read only by the worker; text goes
// into the page as text only.
const search = document.querySelector('cairn-search');
const drop = document.getElementById('drop');
const ingestBox = document.getElementById('ingest');
const bar = document.getElementById('bar');
const progressText = document.getElementById('progress-text');
const cancel = document.getElementById('cancel');
const fileList = document.getElementById('files');
const ownText = document.getElementById('own-text');
const forget = document.getElementById('forget');

function seconds(ms) {
  if (ms == null || !Number.isFinite(ms)) return '…';
  const s = Math.round(ms / 1000);
  return s < 90 ? `${s} s` : `${Math.floor(s / 60)} min ${s % 60} s`;
}

function start(files) {
  if (!files.length) return;
  fileList.replaceChildren();
  ingestBox.dataset.phase = 'reading';
  bar.hidden = false;
  bar.value = 0;
  cancel.hidden = false;
  progressText.textContent = `Reading ${files.length} file${files.length === 1 ? '' : 's'}…`;
  search.ingest(files);
}

// A dropped folder's files, with their paths inside it.
async function entries(entry, prefix = '') {
  if (entry.isFile) {
    const file = await new Promise((resolve, reject) => entry.file(resolve, reject));
    return [{ name: prefix + entry.name, file }];
  }
  if (!entry.isDirectory) return [];
  const reader = entry.createReader();
  const out = [];
  for (;;) {
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) break;
    for (const e of batch) {
      if (!e.name.startsWith('.')) out.push(...(await entries(e, `${prefix}${entry.name}/`)));
    }
  }
  return out;
}

drop.addEventListener('dragover', (e) => {
  e.preventDefault();
  drop.classList.add('over');
});
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', async (e) => {
  e.preventDefault();
  drop.classList.remove('over');
  const items = [...(e.dataTransfer.items || [])];
  const viaEntries = items.length && items.every((i) => typeof i.webkitGetAsEntry === 'function');
  if (!viaEntries) {
    start([...e.dataTransfer.files]);
    return;
  }
  const roots = items.map((i) => i.webkitGetAsEntry()).filter(Boolean);
  const files = [];
  for (const r of roots) files.push(...(await entries(r)));
  start(files);
});
for (const id of ['pick-files', 'pick-folder']) {
  const input = document.getElementById(id);
  input.addEventListener('change', () => {
    start([...input.files]);
    input.value = '';
  });
}
if (!('webkitdirectory' in document.createElement('input'))) document.getElementById('pick-folder-label').hidden = true;
cancel.addEventListener('click', () => search.cancelIngest());
forget.addEventListener('click', () => search.forget());

function noteItem(msg) {
  const li = document.createElement('li');
  li.dataset.status = msg.status;
  li.dataset.name = msg.name;
  li.append(document.createTextNode(msg.name));
  const note = document.createElement('span');
  note.className = 'note';
  const what = msg.status === 'indexed' ? `${msg.passages} passage${msg.passages === 1 ? '' : 's'}` : 'skipped';
  note.textContent = ` — ${what}${msg.message ? `: ${msg.message}` : ''}`;
  li.append(note);
  return li;
}

function done(phase, text) {
  ingestBox.dataset.phase = phase;
  bar.hidden = true;
  cancel.hidden = true;
  progressText.textContent = text;
}

search.addEventListener('cairn-ingest', (e) => {
  const msg = e.detail;
  switch (msg.type) {
    case 'ingest-file':
      fileList.append(noteItem(msg));
      break;
    case 'ingest-progress':
      ingestBox.dataset.phase = msg.phase;
      bar.value = msg.total ? msg.done / msg.total : 0;
      if (msg.phase === 'reading') progressText.textContent = `Reading files: ${msg.done} of ${msg.total}`;
      else if (msg.phase === 'embedding') {
        const rate = msg.perSec ? `, ${msg.perSec.toFixed(1)} passages/s, ${seconds(msg.etaMs)} left` : '';
        progressText.textContent = `Embedding: ${msg.done} of ${msg.total} passages${rate}`;
      } else progressText.textContent = 'Writing the index…';
      break;
    case 'ingest-done':
      done('done', `Indexed ${msg.passages} passages from ${msg.files} file${msg.files === 1 ? '' : 's'} in ${seconds(msg.ms)} (${msg.perSec.toFixed(1)} passages/s on ${msg.backend === 'webgpu' ? 'WebGPU' : 'the CPU'}${msg.calibration?.reason ? `: ${msg.calibration.reason}` : ''})${msg.skipped ? `; ${msg.skipped} skipped` : ''}.`);
      ingestBox.dataset.perSec = msg.perSec.toFixed(2);
      ingestBox.dataset.backend = msg.backend;
      break;
    case 'ingest-cancelled':
      done('cancelled', 'Cancelled: the index in use did not change.');
      break;
    case 'ingest-error':
      done('error', msg.message);
      break;
    case 'own':
      if (msg.passages) {
        const when = msg.builtAt ? new Date(msg.builtAt).toLocaleString() : '';
        ownText.textContent = `Searching ${msg.passages} passages from ${msg.files} file${msg.files === 1 ? '' : 's'}${when ? ` (indexed ${when})` : ''}; ${msg.kept ? 'kept in this browser for your next visit' : msg.reason || 'not kept'}.`;
        forget.hidden = false;
      } else {
        ownText.textContent = msg.reason || 'No files indexed yet.';
        forget.hidden = true;
      }
      document.getElementById('own-index').dataset.passages = String(msg.passages || 0);
      break;
    default:
      break;
  }
});

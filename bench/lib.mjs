// Helpers shared by the benchmark scripts: percentiles, machine facts, BENCHMARKS.md sections.
import fs from 'node:fs';
import os from 'node:os';
import { execFileSync } from 'node:child_process';

export function percentile(values, p) {
  if (!values.length) return NaN;
  const s = [...values].sort((a, b) => a - b);
  return s[Math.round((s.length - 1) * p)];
}

export function machine() {
  const cpu = os.cpus()[0]?.model?.trim() || 'unknown CPU';
  return `${cpu}, ${os.cpus().length} cores, ${os.platform()}`;
}

export function today() {
  return new Date().toISOString().slice(0, 10);
}

export function chromiumVersion(path = '/usr/bin/chromium') {
  try {
    return execFileSync(path, ['--version']).toString().trim();
  } catch {
    return 'Chromium (version unknown)';
  }
}

// Replaces the text between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in `file`
// (appending the section when absent), as `cairn bench encode --write` does.
export function updateSection(file, name, body) {
  const start = `<!-- bench:${name} -->`;
  const end = `<!-- /bench:${name} -->`;
  const old = fs.existsSync(file) ? fs.readFileSync(file, 'utf8') : '# Benchmarks\n';
  const block = `${start}\n${body}${end}`;
  const s = old.indexOf(start);
  const e = old.indexOf(end);
  const next = s >= 0 && e > s
    ? old.slice(0, s) + block + old.slice(e + end.length)
    : `${old.trimEnd()}\n\n${block}\n`;
  fs.writeFileSync(file, next);
}

export function fmt(x, digits = 1) {
  return Number.isFinite(x) ? x.toFixed(digits) : 'n/a';
}

// `--name value` from argv (removed from it), or the default.
export function opt(args, name, dflt) {
  const i = args.indexOf(name);
  if (i < 0) return dflt;
  const v = args[i + 1];
  args.splice(i, 2);
  return v;
}

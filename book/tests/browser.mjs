// The book in a real browser: opens every page of the built book in
// headless Chromium at 1280×800, as a reader on a laptop sees it, and
// checks what a reader would notice first: a table wider than the page, a
// cell wrapped over more than two lines, a broken image, a dead link.
//
//   node book/tests/browser.mjs [BOOK_DIR] [SCREENSHOT_DIR]
//
// BOOK_DIR is mdBook's output (book/book by default); a screenshot of each
// page that has a table goes into SCREENSHOT_DIR (target/book-screenshots).
// Before the book, the script checks a fixture page that breaks every rule
// once (book/tests/fixtures/): a check that cannot see those failures
// would pass any book, so it stops there. Exit status: 0 when every page
// passes, 1 on any failure (each named by page and table), 2 when the
// check itself cannot run.

import { createServer } from 'node:http';
import { mkdtempSync, mkdirSync, readFileSync, readdirSync, rmSync, statSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, extname, join, relative, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../..');
const bookDir = resolve(process.argv[2] ?? join(root, 'book/book'));
const shotsDir = resolve(process.argv[3] ?? join(root, 'target/book-screenshots'));
const fixtureDir = join(here, 'fixtures');

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
// Without the background-networking flags Chromium calls home at start,
// and a closed network refuses it.
const ARGS = [
  '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic',
  '--no-first-run', '--disable-background-networking',
  '--disable-component-update', '--disable-sync',
];
const VIEWPORT = { width: 1280, height: 800 };
// The most lines a cell may take: a name, a figure or a header may wrap
// once, and a figure not at all. A sentence (PROSE_WORDS words or more, as
// in the hand-written tables of the workload chapter) wraps as the column
// lets it, and so may any cell of its row, up to the sentence's height.
const MAX_LINES = 2;
const PROSE_WORDS = 8;
// mdBook's own pages, not chapters: the print page repeats every chapter
// (and rewrites every link into an anchor of its own), toc.html is the
// sidebar without JavaScript, 404.html is served for a missing page.
const NOT_CHAPTERS = new Set(['print.html', 'toc.html', '404.html']);

const TYPES = {
  '.html': 'text/html; charset=utf-8', '.css': 'text/css', '.js': 'text/javascript',
  '.svg': 'image/svg+xml', '.png': 'image/png', '.jpg': 'image/jpeg',
  '.json': 'application/json', '.woff2': 'font/woff2', '.woff': 'font/woff',
  '.ttf': 'font/ttf', '.ico': 'image/x-icon',
};

/// Serves `dir` on a loopback port: pages load as from a web server,
/// fonts and scripts included.
function serve(dir) {
  const server = createServer((req, res) => {
    let path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (path.endsWith('/')) path += 'index.html';
    const file = resolve(dir, '.' + path);
    if (!file.startsWith(dir + sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': TYPES[extname(file)] ?? 'application/octet-stream' });
    res.end(readFileSync(file));
  });
  return new Promise((ok) => server.listen(0, '127.0.0.1', () => ok(server)));
}

/// Every chapter page under `dir`, as paths relative to it.
function pages(dir) {
  const found = [];
  const walk = (d) => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const path = join(d, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.html')) found.push(relative(dir, path).split(sep).join('/'));
    }
  };
  walk(dir);
  return found.filter((p) => !NOT_CHAPTERS.has(p)).sort();
}

/// The ids a page declares, read from its file (so that a link into a
/// page the walk has not opened yet is checked all the same).
const idCache = new Map();
function idsOf(file) {
  if (!idCache.has(file)) {
    const html = readFileSync(file, 'utf8');
    const ids = new Set();
    for (const m of html.matchAll(/\s(?:id|name)\s*=\s*"([^"]*)"/g)) ids.add(m[1]);
    idCache.set(file, ids);
  }
  return idCache.get(file);
}

/// What the page shows, measured in the browser: its tables, cells,
/// images and links. Runs inside the page.
async function measure([maxLines, proseWords]) {
  const describe = (table, i) => {
    const head = [...(table.rows[0]?.cells ?? [])].map((c) => c.textContent.trim()).filter(Boolean);
    let heading = null;
    for (let el = table; el && !heading; el = el.previousElementSibling ?? el.parentElement) {
      if (/^H[1-6]$/.test(el.tagName)) heading = el.textContent.trim();
    }
    const cols = head.slice(0, 4).join(' | ') + (head.length > 4 ? ' | …' : '');
    return `table ${i + 1} (${cols})${heading ? ` under “${heading}”` : ''}`;
  };
  const lines = (cell) => {
    const style = getComputedStyle(cell);
    let lh = parseFloat(style.lineHeight);
    if (Number.isNaN(lh)) lh = 1.2 * parseFloat(style.fontSize);
    const range = document.createRange();
    range.selectNodeContents(cell);
    const tops = [...range.getClientRects()]
      .filter((r) => r.width > 0 && r.height > 0)
      .map((r) => r.top)
      .sort((a, b) => a - b);
    // A new line starts half a line below the last: a code span's box
    // sits a few pixels off its line's text, never half a line.
    let count = 0;
    let last = -Infinity;
    for (const top of tops) {
      if (top > last + lh / 2) {
        count += 1;
        last = top;
      }
    }
    return count;
  };
  const FIGURE = /^[<>≈~]?\s?\d[\d.,]*\s?(?:[µm]?s|[KMG]i?B|%)$/u;
  const problems = [];
  const main = document.querySelector('main') ?? document.body;
  const column = main.getBoundingClientRect().width;
  const tables = [...main.querySelectorAll('table')];
  tables.forEach((table, i) => {
    const name = describe(table, i);
    const box = table.parentElement;
    const width = table.getBoundingClientRect().width;
    if (box.scrollWidth > box.clientWidth + 1) {
      problems.push(`${name}: needs scrolling, ${box.scrollWidth}px of content in ${box.clientWidth}px`);
    } else if (width > column + 1) {
      problems.push(`${name}: ${Math.round(width)}px wide, the content column is ${Math.round(column)}px`);
    }
    const tall = [];
    const split = [];
    for (const row of table.rows) {
      const cells = [...row.cells].map((cell) => {
        const text = cell.textContent.trim();
        return { text, n: lines(cell), prose: text.split(/\s+/).length >= proseWords };
      });
      // A row already as tall as a sentence in it loses nothing when a
      // shorter cell wraps as far.
      const sentence = Math.max(0, ...cells.filter((c) => c.prose).map((c) => c.n));
      for (const { text, n, prose } of cells) {
        if (prose) continue;
        if (n > maxLines && n > sentence) tall.push(`“${text.slice(0, 40)}” (${n} lines)`);
        // A figure with its unit ("2.87 s", "729 µs", "17.3 MiB", "100%")
        // is one thing: over two lines it reads as two.
        else if (n > 1 && FIGURE.test(text)) split.push(`“${text}”`);
      }
    }
    if (split.length) {
      const shown = split.slice(0, 3).join(', ') + (split.length > 3 ? `, and ${split.length - 3} more` : '');
      problems.push(`${name}: ${split.length} figure${split.length > 1 ? 's' : ''} broken over lines: ${shown}`);
    }
    if (tall.length) {
      const shown = tall.slice(0, 3).join(', ') + (tall.length > 3 ? `, and ${tall.length - 3} more` : '');
      problems.push(`${name}: ${tall.length} cell${tall.length > 1 ? 's' : ''} over ${maxLines} lines: ${shown}`);
    }
  });
  const images = [];
  for (const img of document.querySelectorAll('img')) {
    img.loading = 'eager';
    await img.decode().catch(() => {});
    images.push({ src: img.currentSrc || img.src, ok: img.complete && img.naturalWidth > 0 });
  }
  for (const obj of document.querySelectorAll('object[data], embed[src]')) {
    images.push({ src: obj.data ?? obj.src, ok: null });
  }
  const links = [...document.querySelectorAll('a[href]')].map((a) => a.href);
  return { problems, tables: tables.length, images, links };
}

/// Checks every page of the site in `dir`; returns the failures, each a
/// line naming its page, and prints a line per page.
async function check(context, dir, label, shots) {
  const server = await serve(dir);
  const origin = `http://127.0.0.1:${server.address().port}`;
  const failures = [];
  const list = pages(dir);
  const fileOf = (url) => {
    let path = decodeURIComponent(url.pathname);
    if (path.endsWith('/')) path += 'index.html';
    return resolve(dir, '.' + path);
  };
  const fetched = new Map();
  const exists = async (url) => {
    if (!fetched.has(url)) fetched.set(url, fetch(url).then((r) => r.ok, () => false));
    return fetched.get(url);
  };
  console.log(`${label}: ${list.length} page${list.length === 1 ? '' : 's'} at ${VIEWPORT.width}×${VIEWPORT.height}`);
  try {
    const page = await context.newPage();
    for (const path of list) {
      const errors = [];
      const response = await page.goto(`${origin}/${path}`, { waitUntil: 'load', timeout: 60_000 });
      if (!response?.ok()) errors.push(`the page itself: HTTP ${response?.status()}`);
      const seen = await page.evaluate(measure, [MAX_LINES, PROSE_WORDS]);
      errors.push(...seen.problems);
      for (const image of seen.images) {
        const ok = image.ok ?? (await exists(image.src));
        if (!ok) errors.push(`broken image: ${image.src.replace(origin + '/', '')}`);
      }
      for (const href of new Set(seen.links)) {
        const url = new URL(href);
        if (url.origin !== origin) continue;
        const file = fileOf(url);
        const shown = href.replace(origin + '/', '');
        if (!file.startsWith(dir + sep) || !existsSync(file) || !statSync(file).isFile()) {
          errors.push(`dead link: ${shown}`);
        } else if (url.hash.length > 1 && file.endsWith('.html')) {
          const id = decodeURIComponent(url.hash.slice(1));
          if (!idsOf(file).has(id)) errors.push(`dead anchor: ${shown} (no id “${id}” there)`);
        }
      }
      if (shots && seen.tables > 0) {
        const shot = join(shots, path.replace(/\//g, '__').replace(/\.html$/, '.png'));
        await page.screenshot({ path: shot, fullPage: true });
      }
      const what = `${seen.tables} table${seen.tables === 1 ? '' : 's'}, ` +
        `${seen.images.length} image${seen.images.length === 1 ? '' : 's'}, ` +
        `${new Set(seen.links).size} link${new Set(seen.links).size === 1 ? '' : 's'}`;
      if (errors.length === 0) {
        console.log(`  ok    ${path} (${what})`);
      } else {
        console.log(`  FAIL  ${path} (${what})`);
        for (const error of errors) console.log(`        - ${error}`);
        failures.push(...errors.map((e) => `${path}: ${e}`));
      }
    }
    await page.close();
  } finally {
    server.close();
  }
  return failures;
}

/// The check of the check: the fixture breaks each rule once and keeps
/// each once, and the check must report exactly the broken ones.
async function selfTest(context) {
  const failures = await check(context, fixtureDir, 'the check of the check (fixtures, every rule broken once)', null);
  const expected = [
    ['a table that needs scrolling', /table 1 \(.*\).*needs scrolling/],
    ['a cell over two lines', /table 2 \(.*\).*cells? over 2 lines/],
    ['a figure broken over lines', /table 2 \(.*\).*figures? broken over lines: “510 µs”/],
    ['a broken image', /broken image: missing\.svg/],
    ['a dead link', /dead link: no-such-page\.html/],
    ['a dead anchor', /dead anchor: index\.html#no-such-id/],
  ];
  const missed = expected.filter(([, re]) => !failures.some((f) => re.test(f)));
  const extra = failures.filter((f) => !expected.some(([, re]) => re.test(f)));
  for (const [what] of missed) console.log(`  the check missed ${what}`);
  for (const f of extra) console.log(`  the check failed what the fixture keeps: ${f}`);
  if (missed.length || extra.length) return false;
  console.log(`  the check saw all ${expected.length} broken rules, and nothing else\n`);
  return true;
}

async function main() {
  if (!existsSync(join(bookDir, 'index.html'))) {
    console.error(`no book at ${bookDir}: run \`mdbook build book\` first`);
    return 2;
  }
  if (!existsSync(CHROMIUM)) {
    console.error(`no Chromium at ${CHROMIUM}: apt-get install chromium (or set CHROMIUM)`);
    return 2;
  }
  mkdirSync(shotsDir, { recursive: true });
  // A fresh profile each run: nothing cached from an older book.
  const profile = mkdtempSync(join(tmpdir(), 'book-in-browser-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ARGS,
    viewport: VIEWPORT,
  });
  try {
    if (!(await selfTest(context))) {
      console.error('the browser check cannot see what it is meant to: stopping before the book');
      return 2;
    }
    const failures = await check(context, bookDir, 'the book', shotsDir);
    console.log(`\nscreenshots of the pages with tables: ${relative(process.cwd(), shotsDir) || '.'}`);
    if (failures.length) {
      console.log(`\n${failures.length} failure${failures.length === 1 ? '' : 's'}:`);
      for (const f of failures) console.log(`  ${f}`);
      return 1;
    }
    console.log('\nevery page passed: tables fit, cells within two lines, images load, links resolve');
    return 0;
  } finally {
    await context.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

main().then((code) => process.exit(code), (e) => {
  console.error(e);
  process.exit(2);
});

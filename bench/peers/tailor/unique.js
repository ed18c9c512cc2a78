'use strict';
// Tailor on the variant of page-5 where every page has its own data (issue 19, target 1):
//
//   GET /page-5/<id>  -> the peers' page-5, each fragment fetched as /frag-N?p=<id>
//
// The same server as the peers' tailor/server.js (the template kept in memory and handed to Tailor's
// parser on every request, every other option Tailor's default), with Tailor's own fragment request
// wrapped to add the page's id to each fragment's URL: the template stays the same for every page, as
// Tailor's is. Copied next to that server.js by bench/peers/run.sh, so node-tailor resolves from the
// peers' own node_modules. Env: HOST, PORT, FRAGMENT_BASE, CONTENT_DIR, NODE_ENV=production.
const http = require('node:http');
const fs = require('node:fs');
const path = require('node:path');
const Tailor = require('node-tailor');
const filterHeaders = require('node-tailor/lib/filter-headers');
const requestFragment = require('node-tailor/lib/request-fragment')(filterHeaders);

const HOST = process.env.HOST || '127.0.0.1';
const PORT = Number(process.env.PORT || 17100);
const FRAGMENT_BASE = process.env.FRAGMENT_BASE || 'http://127.0.0.1:17101';
const CONTENT_DIR = process.env.CONTENT_DIR || path.join(__dirname, '..', 'common', 'content');
const HEAD = fs.readFileSync(path.join(CONTENT_DIR, 'page-head.html'), 'utf8');
const TAIL = fs.readFileSync(path.join(CONTENT_DIR, 'page-tail.html'), 'utf8');
const ROUTE = /^\/page-5\/(\d{1,18})$/;

const template =
    HEAD +
    [1, 2, 3, 4, 5]
        .map((n) => `<fragment id="frag-${n}" src="${FRAGMENT_BASE}/frag-${n}"></fragment>`)
        .join('\n') +
    '\n' +
    TAIL;

const tailor = new Tailor({
    fetchTemplate: (request, parseTemplate) => parseTemplate(template),
    requestFragment: (url, attributes, request, span) =>
        requestFragment(`${url}?p=${request.url.match(ROUTE)[1]}`, attributes, request, span),
});

const server = http.createServer((req, res) => {
    if (ROUTE.test(req.url)) {
        tailor.requestHandler(req, res);
        return;
    }
    res.writeHead(404, { 'Content-Type': 'text/plain' });
    res.end('not found');
});
server.listen(PORT, HOST, () => {
    console.log(`tailor (unique) on http://${HOST}:${PORT}/page-5/<id> fragments=${FRAGMENT_BASE}`);
});
for (const sig of ['SIGTERM', 'SIGINT']) process.on(sig, () => process.exit(0));

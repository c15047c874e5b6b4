// The demo's service worker: Cairn's, served from the site's root so that its scope covers
// the demo pages (a service worker serves only pages at or below its own folder).
importScripts('cairn/cairn-sw.js');

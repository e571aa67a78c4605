// Applies the saved theme before the first paint (no flash). A file, not an
// inline script: pampad's Content-Security-Policy allows scripts from 'self' only.
try {
  var t = localStorage.getItem('pampa-theme');
  if (t === 'light' || t === 'dark') document.documentElement.dataset.theme = t;
} catch (e) {}

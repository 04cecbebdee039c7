// Progressive enhancement only: the page works without this file. Buttons with data-copy copy
// the text of the element they name (an app password's groups joined with "-", or the list of
// recovery codes, one per line). Served as a file, never inline: the CSP allows no inline script.
'use strict';
document.addEventListener('DOMContentLoaded', function () {
  if (!navigator.clipboard) return;
  document.querySelectorAll('button[data-copy]').forEach(function (button) {
    var target = document.getElementById(button.getAttribute('data-copy'));
    if (!target) return;
    button.hidden = false;
    button.addEventListener('click', function () {
      var parts = Array.prototype.map.call(target.querySelectorAll('span, code'), function (el) { return el.textContent; });
      var text = target.id === 'new-password' ? parts.join('-') : parts.join('\n');
      navigator.clipboard.writeText(text).then(function () {
        var label = button.textContent;
        button.textContent = button.getAttribute('data-copied') || label;
        setTimeout(function () { button.textContent = label; }, 2000);
      }, function () { /* the text stays selectable by hand */ });
    });
  });
});

// Passkey ceremonies (WebAuthn) for forms marked data-passkey="register" or "authenticate".
// The server-rendered form stays the one thing that changes state: this script asks the server
// for options (a challenge bound to the page session), lets the browser and authenticator answer
// through @simplewebauthn/browser (served as a file beside this one: the CSP allows no inline
// script), puts the answer into the form's hidden "response" field and submits the form. Without
// JavaScript, or in a browser without WebAuthn, the forms stay hidden and the "needs JavaScript"
// sentence stays shown.
'use strict';
document.addEventListener('DOMContentLoaded', function () {
  var webauthn = window.SimpleWebAuthnBrowser;
  if (!webauthn || !webauthn.browserSupportsWebAuthn()) return;
  document.querySelectorAll('form[data-passkey]').forEach(function (form) {
    var kind = form.getAttribute('data-passkey');
    var button = form.querySelector('button[type=submit]');
    var failed = form.querySelector('.passkey-error');
    form.hidden = false;
    document.querySelectorAll('.needs-js').forEach(function (el) { el.hidden = true; });
    form.addEventListener('submit', function (event) {
      event.preventDefault();
      button.disabled = true;
      failed.hidden = true;
      fetch(form.getAttribute('data-options'), { method: 'POST', credentials: 'same-origin', headers: { 'x-csrf-token': form.elements._csrf.value } })
        .then(function (r) {
          if (!r.ok || (r.headers.get('content-type') || '').indexOf('application/json') !== 0) throw new Error('no options');
          return r.json();
        })
        .then(function (options) {
          return kind === 'register' ? webauthn.startRegistration({ optionsJSON: options }) : webauthn.startAuthentication({ optionsJSON: options });
        })
        .then(function (response) {
          form.elements.response.value = JSON.stringify(response);
          form.submit();
        }, function () {
          button.disabled = false;
          failed.hidden = false;
        });
    });
  });
});

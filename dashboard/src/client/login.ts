import { byId, setText, show } from './dom.ts';

/** The sign-in form: posts JSON to /api/login, then opens the dashboard. */
const form = byId<HTMLFormElement>('login-form');
const error = byId('login-error');
const submit = byId<HTMLButtonElement>('login-submit');

form.addEventListener('submit', (e) => {
  e.preventDefault();
  const username = byId<HTMLInputElement>('username').value;
  const password = byId<HTMLInputElement>('password').value;
  submit.disabled = true;
  show(error, false);
  fetch('/api/login', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ username, password }),
    credentials: 'same-origin',
  })
    .then(async (res) => {
      if (res.ok) {
        window.location.assign('/');
        return;
      }
      const body = (await res.json().catch(() => ({}))) as { error?: string };
      setText(
        error,
        res.status === 429
          ? (body.error ?? 'Too many failed attempts; wait a few minutes.')
          : res.status === 401
            ? 'Wrong username or password.'
            : (body.error ?? `Sign-in failed (HTTP ${res.status}).`),
      );
      show(error, true);
    })
    .catch(() => {
      setText(error, 'The dashboard server did not answer.');
      show(error, true);
    })
    .finally(() => {
      submit.disabled = false;
    });
});

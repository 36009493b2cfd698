// Sign-up, log-in, and the account page (limits, today's usage, changing the password).

import { changePassword, logIn, request, signUp } from './api.js';
import { errorBox, factTable, field, fill, h, heading } from './dom.js';
import { refresh } from './app.js';

/** Where to go after logging in: the page that asked for it, if it is a console route. */
function nextRoute(route) {
  const next = route.params.get('next') || '#/';
  return next.startsWith('#/') && !next.startsWith('#/login') && !next.startsWith('#/signup') ? next : '#/';
}

function credentialsForm({ id, submitLabel, withAccount, onSubmit }) {
  const email = h('input', { id: `${id}-email`, name: 'email', type: 'email', autocomplete: 'username', required: true });
  const password = h('input', {
    id: `${id}-password`, name: 'password', type: 'password', required: true, minlength: '10', maxlength: '1024',
    autocomplete: withAccount ? 'new-password' : 'current-password',
  });
  const account = withAccount
    ? h('input', { id: `${id}-account`, name: 'account_name', type: 'text', autocomplete: 'organization', maxlength: '100' })
    : null;
  const errors = h('div', { class: 'form-errors' });
  const button = h('button', { type: 'submit', class: 'primary' }, submitLabel);
  const form = h('form', { id, class: 'card narrow', novalidate: false },
    field('Email', email),
    field('Password', password, withAccount ? 'At least 10 characters.' : null),
    account ? field('Account name (optional)', account, 'Defaults to the part of your email before the @.') : null,
    errors,
    h('div', { class: 'actions' }, button));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    button.disabled = true;
    errors.replaceChildren();
    try {
      await onSubmit(email.value.trim(), password.value, account ? account.value.trim() : '');
    } catch (e) {
      errors.replaceChildren(errorBox(e));
      password.focus();
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export async function renderLogin(main, route) {
  const next = nextRoute(route);
  main.replaceChildren(
    heading('Log in'),
    credentialsForm({
      id: 'login',
      submitLabel: 'Log in',
      withAccount: false,
      onSubmit: async (email, password) => {
        await logIn(email, password);
        goTo(next);
      },
    }),
    h('p', null, 'No account yet? ', h('a', { href: `#/signup?next=${encodeURIComponent(next)}` }, 'Sign up')),
  );
}

export async function renderSignup(main, route) {
  const next = nextRoute(route);
  main.replaceChildren(
    heading('Sign up'),
    h('p', { class: 'muted' }, 'A new account of your own: its jobs, batches and API keys are visible only to it.'),
    credentialsForm({
      id: 'signup',
      submitLabel: 'Create account',
      withAccount: true,
      onSubmit: async (email, password, accountName) => {
        await signUp(email, password, accountName);
        goTo(next);
      },
    }),
    h('p', null, 'Already signed up? ', h('a', { href: `#/login?next=${encodeURIComponent(next)}` }, 'Log in')),
  );
}

function goTo(hash) {
  if (location.hash === hash) refresh();
  else location.hash = hash;
}

export async function renderAccount(main) {
  const details = h('div', { 'aria-busy': 'true' }, h('p', { class: 'muted' }, 'Loading the account…'));
  main.replaceChildren(heading('Account'), details, passwordForm());
  try {
    const account = await request('GET', '/v1/account');
    const { limits = {}, usage = {} } = account;
    fill(details, factTable('Account', [
      ['Name', account.name, 'name'],
      ['Id', account.id, 'id'],
      ['Daily quota', limits.daily_quota, 'daily_quota'],
      ['Submissions today', usage.submissions !== undefined ? `${usage.submissions} (${usage.remaining} left)` : null, 'usage'],
      ['Results kept', limits.retention_days !== undefined ? `${limits.retention_days} days` : null, 'retention_days'],
      ['GPS', limits.redact_gps ? 'never stored (redacted)' : 'stored when present', 'redact_gps'],
    ]));
  } catch (e) {
    details.replaceChildren(errorBox(e));
  }
  details.removeAttribute('aria-busy');
}

function passwordForm() {
  const current = h('input', { id: 'pw-current', type: 'password', autocomplete: 'current-password', required: true });
  const fresh = h('input', { id: 'pw-new', type: 'password', autocomplete: 'new-password', required: true, minlength: '10', maxlength: '1024' });
  const outcome = h('div', { role: 'status', 'aria-live': 'polite' });
  const button = h('button', { type: 'submit' }, 'Change password');
  const form = h('form', { id: 'password-form', class: 'card narrow' },
    h('h2', null, 'Change password'),
    field('Current password', current),
    field('New password', fresh, 'At least 10 characters. Your other sessions are logged out.'),
    outcome,
    h('div', { class: 'actions' }, button));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    button.disabled = true;
    outcome.replaceChildren();
    try {
      await changePassword(current.value, fresh.value);
      form.reset();
      outcome.replaceChildren(h('p', { class: 'ok' }, 'Password changed.'));
    } catch (e) {
      outcome.replaceChildren(errorBox(e));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

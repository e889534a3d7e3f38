// Errors as people read them: chosen by the error's `extensions.code` (the
// gateway's contract), never by its message text, and shown in the page's
// alert region (role="alert": screen readers announce it at once).

const region = () => document.getElementById('errors');

/**
 * The sentence for a failed action.
 * @param {{ code: string, message: string, extensions?: object }} error a RequestFailed
 * @param {'register'|'login'|'rename'|'post'|'load'} action what the person was doing
 */
export function describe(error, action) {
  const seconds = Number(error.extensions?.retryAfter);
  switch (error.code) {
    case 'CONFLICT':
      return action === 'register' ? 'That username is taken: choose another one.' : `That conflicts with what is there: ${error.message}.`;
    case 'UNAUTHENTICATED':
      return action === 'login' ? 'Wrong username or password.' : 'Your session has ended: log in again.';
    case 'FORBIDDEN':
      return 'You may not do that.';
    case 'RATE_LIMITED':
      return Number.isFinite(seconds) && seconds > 0
        ? `Too many attempts: try again in ${seconds} second${seconds === 1 ? '' : 's'}.`
        : 'Too many attempts: wait a little and try again.';
    case 'BAD_USER_INPUT':
      return `Please check what you typed: ${error.message}.`;
    case 'NETWORK':
      return 'The server cannot be reached: check your connection, then try again.';
    case 'UNAVAILABLE':
    case 'UPSTREAM_UNAVAILABLE':
    case 'TIMEOUT':
      return 'The server is away for a moment: try again shortly.';
    case 'NOT_FOUND':
      return 'That is not there (any more).';
    default:
      return `Something went wrong on the server (${error.code}). Try again later.`;
  }
}

/** Shows the error of `action`, replacing the one shown before. */
export function show(error, action) {
  const paragraph = document.createElement('p');
  paragraph.dataset.code = error.code;
  paragraph.dataset.action = action;
  paragraph.textContent = describe(error, action);
  const dismiss = document.createElement('button');
  dismiss.type = 'button';
  dismiss.className = 'secondary';
  dismiss.textContent = 'Dismiss';
  dismiss.addEventListener('click', () => clear());
  paragraph.append(' ', dismiss);
  region().replaceChildren(paragraph);
}

/** Hides the error shown, or only the error of `action` when one is named. */
export function clear(action) {
  const shown = region().firstElementChild;
  if (!action || shown?.dataset.action === action) region().replaceChildren();
}

// The benchmark's message: a personalized newsletter whose body is exactly 2,048 bytes, 30 % text/plain and
// 70 % HTML (sent as multipart/alternative), for one recipient, addressed and greeted by name.
import MailComposer from 'nodemailer/lib/mail-composer';

/** Body bytes of every newsletter (text part + HTML part). */
export const NEWSLETTER_BODY_BYTES = 2048;
/** Bytes of the text/plain part: 30 % of the body. */
export const NEWSLETTER_TEXT_BYTES = Math.round(NEWSLETTER_BODY_BYTES * 0.3);
/** Bytes of the HTML part: the other 70 %. */
export const NEWSLETTER_HTML_BYTES = NEWSLETTER_BODY_BYTES - NEWSLETTER_TEXT_BYTES;
/** The sender of every newsletter. */
export const NEWSLETTER_FROM = Object.freeze({
  name: 'Mailroom Weekly',
  address: 'weekly@news.example.test',
});

const FIRST = [
  'Ada',
  'Grace',
  'Alan',
  'Edsger',
  'Barbara',
  'Donald',
  'Frances',
  'Ken',
  'Radia',
  'Linus',
  'Margaret',
  'Dennis',
];
const LAST = [
  'Lovelace',
  'Hopper',
  'Turing',
  'Dijkstra',
  'Liskov',
  'Knuth',
  'Allen',
  'Thompson',
  'Perlman',
  'Torvalds',
  'Hamilton',
  'Ritchie',
];
const FILLER =
  'Queues that survive restarts, retries that back off, bounces that stop at once and metrics you can alert on. ';

/**
 * @typedef {object} Newsletter
 * @property {{ name: string, address: string }} from
 * @property {{ name: string, address: string }} to
 * @property {string} subject
 * @property {string} text
 * @property {string} html
 */

/**
 * The newsletter for reader `i` (0-based): a different name, address, subject and greeting each time, the
 * same sizes always (ASCII only, so characters are bytes).
 * @param {number} i
 * @returns {Newsletter}
 */
export function newsletter(i) {
  const { name, address } = reader(i);
  const textHead = `Hello ${name},\n\nHere is this week's issue, picked for you.\n\n`;
  const textTail = `\n\nUnsubscribe: https://news.example.test/u/${i + 1}\n`;
  const htmlHead =
    '<!doctype html><html><body style="font-family:sans-serif;max-width:640px;margin:auto">\n' +
    `<h1>Mailroom Weekly</h1>\n<p>Dear ${name}, here is this week's issue, picked for you.</p>\n` +
    '<div style="margin:1.5em 0;padding:1em;border:1px solid #ddd;border-radius:6px"><p>';
  const htmlTail =
    '</p>\n<p><a href="https://news.example.test/articles/42">Read more</a></p></div>\n' +
    `<p style="color:#777;font-size:small"><a href="https://news.example.test/u/${i + 1}">Unsubscribe</a></p>\n` +
    '</body></html>\n';
  return {
    from: { ...NEWSLETTER_FROM },
    to: { name, address },
    subject: `${name}, your Mailroom Weekly is here`,
    text: textHead + fill(NEWSLETTER_TEXT_BYTES - textHead.length - textTail.length) + textTail,
    html: htmlHead + fill(NEWSLETTER_HTML_BYTES - htmlHead.length - htmlTail.length) + htmlTail,
  };
}

/**
 * The reader `i` (0-based) of the newsletter: name and address, the same as in {@link newsletter}.
 * @param {number} i
 * @returns {{ name: string, address: string }}
 */
export function reader(i) {
  return {
    name: `${FIRST[i % FIRST.length]} ${LAST[Math.floor(i / FIRST.length) % LAST.length]}`,
    address: `reader-${i + 1}@example.test`,
  };
}

/**
 * The newsletter as a campaign template (handlebars merge fields `{{name}}` and `{{n}}`), for the
 * hand-over that stores the message once and streams the recipients. Its body is 2,048 bytes for the
 * first reader; other readers' names and numbers make it a few bytes longer or shorter.
 * @returns {{ from: { name: string, address: string }, subject: string, text: string, html: string }}
 */
export function newsletterTemplate() {
  const first = newsletter(0);
  const name = reader(0).name;
  const merge = (/** @type {string} */ text) =>
    text.replaceAll(name, '{{name}}').replaceAll('/u/1\n', '/u/{{n}}\n').replaceAll('/u/1"', '/u/{{n}}"');
  return {
    from: { ...NEWSLETTER_FROM },
    subject: merge(first.subject),
    text: merge(first.text),
    html: merge(first.html),
  };
}

/**
 * Reader `i` as a campaign recipient of {@link newsletterTemplate}.
 * @param {number} i
 */
export function newsletterRecipient(i) {
  const to = reader(i);
  return { to, vars: { name: to.name, n: i + 1 } };
}

/**
 * The newsletter for reader `i` as the MIME message nodemailer sends (CRLF line ends).
 * @param {number} i
 * @returns {Promise<Buffer>}
 */
export function composeNewsletter(i) {
  return new MailComposer(newsletter(i)).compile().build();
}

/**
 * @param {number} length
 * @returns {string} filler text of exactly `length` characters
 */
function fill(length) {
  if (length < 0) throw new Error('newsletter template is longer than its size');
  return FILLER.repeat(Math.ceil(length / FILLER.length)).slice(0, length);
}

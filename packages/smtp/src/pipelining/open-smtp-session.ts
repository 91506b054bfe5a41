import { isIP } from 'node:net';
import { hostname } from 'node:os';
import type { ConnectionOptions } from 'node:tls';
import type { RelayConfig } from '../relay-config.js';
import type { SmtpSendError } from '../relay-transport.js';
import { NO_CAPABILITIES, parseEhloCapabilities, type EhloCapabilities } from './ehlo-capabilities.js';
import { SmtpChannel } from './smtp-channel.js';
import { smtpFailure } from './smtp-failure.js';
import { SmtpSession } from './smtp-session.js';

/** TLS settings for the relay: verified against the configured CA and name, TLS 1.2 at least. */
export function relayTlsOptions(config: RelayConfig): ConnectionOptions {
  const servername = config.tlsServername ?? (isIP(config.host) === 0 ? config.host : undefined);
  return {
    rejectUnauthorized: config.verifyCertificates,
    minVersion: 'TLSv1.2',
    ...(config.ca === undefined ? {} : { ca: [config.ca] }),
    ...(servername === undefined ? {} : { servername }),
  };
}

/** The name announced in EHLO: the configured one, else the host name if it is a FQDN (as in nodemailer). */
export function clientNameOf(config: RelayConfig): string {
  if (config.clientName !== undefined) return config.clientName.replace(/[\r\n]+/g, '');
  let name: string;
  try {
    name = hostname();
  } catch {
    name = '';
  }
  if (!name.includes('.')) return '[127.0.0.1]';
  return /^\d{1,3}(?:\.\d{1,3}){3}$/.test(name) ? `[${name}]` : name;
}

/**
 * Opens a connection to the relay and sets the session up: greeting, EHLO, STARTTLS (required in
 * `starttls` mode: a relay that does not offer it gets nothing, never plaintext), EHLO again, AUTH when
 * credentials are configured (a relay that does not offer AUTH gets nothing unauthenticated). Rejects with
 * SmtpSendError; the connection is closed then.
 */
export async function openSmtpSession(config: RelayConfig): Promise<SmtpSession> {
  const tls = relayTlsOptions(config);
  const channel = new SmtpChannel({
    host: config.host,
    port: config.port,
    ...(config.tlsMode === 'tls' ? { implicitTls: tls } : {}),
    connectionTimeoutMs: config.connectionTimeoutMs,
    greetingTimeoutMs: config.greetingTimeoutMs,
    socketTimeoutMs: config.socketTimeoutMs,
  });
  try {
    const capabilities = await handshake(channel, config, tls);
    channel.inUse = false;
    return new SmtpSession(channel, capabilities);
  } catch (err) {
    // A relay that refused us in an orderly way gets a QUIT; a broken connection is just closed.
    void channel.quit();
    throw err;
  }
}

async function handshake(
  channel: SmtpChannel,
  config: RelayConfig,
  tls: ConnectionOptions,
): Promise<EhloCapabilities> {
  const greeting = await channel.greeting;
  if (!greeting.startsWith('220')) {
    throw smtpFailure(`Invalid greeting. response=${greeting}`, 'EPROTOCOL', 'CONN', greeting);
  }
  const name = clientNameOf(config);
  let capabilities = await hello(channel, name, config);
  if (config.tlsMode === 'starttls') {
    if (!capabilities.startTls) {
      throw smtpFailure(
        'The relay does not offer STARTTLS, which tlsMode starttls requires: nothing was sent in the clear',
        'ETLS',
        'STARTTLS',
      );
    }
    const reply = await command(channel, 'STARTTLS');
    if (!reply.startsWith('2')) {
      throw smtpFailure('Error upgrading connection with STARTTLS', 'ETLS', 'STARTTLS', reply);
    }
    await channel.upgradeToTls(tls);
    // RFC 3207 section 4.2: everything learnt before TLS is forgotten, the extensions are asked for again.
    capabilities = await hello(channel, name, config);
  }
  if (config.auth !== undefined) await authenticate(channel, capabilities, config.auth);
  return capabilities;
}

async function command(channel: SmtpChannel, line: string): Promise<string> {
  const reply = channel.expectReply();
  channel.write(`${line}\r\n`);
  return reply;
}

/** EHLO, or HELO when the relay refuses EHLO and nothing configured needs an extension (STARTTLS, AUTH). */
async function hello(channel: SmtpChannel, name: string, config: RelayConfig): Promise<EhloCapabilities> {
  const reply = await command(channel, `EHLO ${name}`);
  if (reply.startsWith('2')) return parseEhloCapabilities(reply);
  if (/^421[ -]/.test(reply)) {
    throw smtpFailure(`Server terminates connection. response=${reply}`, 'ECONNECTION', 'EHLO', reply);
  }
  if (config.tlsMode === 'starttls' || config.auth !== undefined) {
    throw smtpFailure(
      'EHLO failed but HELO does not support STARTTLS or AUTH, which the configuration requires',
      'ECONNECTION',
      'EHLO',
      reply,
    );
  }
  const helo = await command(channel, `HELO ${name}`);
  if (!helo.startsWith('2')) throw smtpFailure('Invalid HELO', 'EPROTOCOL', 'HELO', helo);
  return NO_CAPABILITIES;
}

/** AUTH PLAIN, else AUTH LOGIN (RFC 4954). The credentials never appear in an error. */
async function authenticate(
  channel: SmtpChannel,
  capabilities: EhloCapabilities,
  auth: { readonly user: string; readonly pass: string },
): Promise<void> {
  if (!capabilities.auth) {
    throw smtpFailure(
      'The relay does not offer AUTH and credentials are configured: nothing is sent unauthenticated',
      'EAUTH',
      'AUTH',
    );
  }
  const b64 = (text: string): string => Buffer.from(text, 'utf8').toString('base64');
  if (capabilities.authMechanisms.includes('PLAIN')) {
    let reply = await command(channel, `AUTH PLAIN ${b64(`\u0000${auth.user}\u0000${auth.pass}`)}`);
    // A relay that wants the initial response on a line of its own asks with 334 and an empty challenge.
    if (reply.startsWith('334')) reply = await command(channel, '');
    if (!reply.startsWith('2')) throw authFailure('Invalid login', 'AUTH PLAIN', reply);
    return;
  }
  if (capabilities.authMechanisms.includes('LOGIN')) {
    let reply = await command(channel, 'AUTH LOGIN');
    if (!/^334[ -]/.test(reply)) {
      throw authFailure('Invalid login sequence while waiting for "334 VXNlcm5hbWU6"', 'AUTH LOGIN', reply);
    }
    reply = await command(channel, b64(auth.user));
    if (!/^334[ -]/.test(reply)) {
      throw authFailure('Invalid login sequence while waiting for "334 UGFzc3dvcmQ6"', 'AUTH LOGIN', reply);
    }
    reply = await command(channel, b64(auth.pass));
    if (!reply.startsWith('2')) throw authFailure('Invalid login', 'AUTH LOGIN', reply);
    return;
  }
  throw smtpFailure(
    `The relay offers no AUTH mechanism Mailroom supports (PLAIN, LOGIN); it offers: ${
      capabilities.authMechanisms.join(' ') || 'none'
    }`,
    'EAUTH',
    'AUTH',
  );
}

function authFailure(
  message: string,
  commandName: 'AUTH PLAIN' | 'AUTH LOGIN',
  reply: string,
): SmtpSendError {
  return smtpFailure(message, 'EAUTH', commandName, reply);
}

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  classifySmtpOutcome,
  parseEnhancedStatus,
  type Classification,
  type OutcomeClass,
  type ReplyClass,
  type SmtpObservation,
} from '@mailroom/core';

interface Case {
  readonly name: string;
  readonly observation: SmtpObservation;
  readonly outcome: OutcomeClass;
  readonly reason: string;
  readonly replyClass: ReplyClass;
  readonly enhancedStatus?: string;
}

/** A reply as nodemailer reports it: responseCode parsed from the response text. */
function reply(response: string, command: string, code?: string): SmtpObservation {
  return {
    response,
    responseCode: Number(response.slice(0, 3)),
    command,
    ...(code === undefined ? {} : { code, message: `${command} failed: ${response}` }),
  };
}

const CASES: readonly Case[] = [
  // Delivered
  {
    name: '250 after the final dot',
    observation: {
      responseCode: 250,
      response: '250 2.0.0 Ok: queued as 4Xyz',
      command: 'DATA',
      bodyWritten: true,
    },
    outcome: 'delivered',
    reason: 'delivered',
    replyClass: '2xx',
    enhancedStatus: '2.0.0',
  },
  {
    name: '250 without enhanced status',
    observation: { responseCode: 250, response: '250 OK id=1q2w3e' },
    outcome: 'delivered',
    reason: 'delivered',
    replyClass: '2xx',
  },

  // Ambiguous: body written, no reply
  {
    name: 'ECONNECTION after the final dot, no reply',
    observation: {
      code: 'ECONNECTION',
      command: 'CONN',
      message: 'Connection closed unexpectedly',
      bodyWritten: true,
    },
    outcome: 'ambiguous',
    reason: 'connection_lost_after_data',
    replyClass: 'ambiguous',
  },
  {
    name: 'ESOCKET reset after the final dot',
    observation: { code: 'ESOCKET', command: 'CONN', message: 'read ECONNRESET', bodyWritten: true },
    outcome: 'ambiguous',
    reason: 'connection_lost_after_data',
    replyClass: 'ambiguous',
  },
  {
    name: 'ETIMEDOUT after the final dot',
    observation: { code: 'ETIMEDOUT', command: 'CONN', message: 'Timeout', bodyWritten: true },
    outcome: 'ambiguous',
    reason: 'timeout_after_data',
    replyClass: 'ambiguous',
  },
  {
    name: 'reply lost: closed after data with no code at all',
    observation: { bodyWritten: true },
    outcome: 'ambiguous',
    reason: 'connection_lost_after_data',
    replyClass: 'ambiguous',
  },
  {
    name: '451 after the final dot is a reply, not ambiguous',
    observation: {
      ...reply('451 4.3.0 Error: queue file write error', 'DATA', 'EMESSAGE'),
      bodyWritten: true,
    },
    outcome: 'transient',
    reason: 'temporary_failure',
    replyClass: '4xx',
    enhancedStatus: '4.3.0',
  },
  {
    name: 'ECONNECTION before the body was written is transient',
    observation: {
      code: 'ECONNECTION',
      command: 'CONN',
      message: 'Connection closed unexpectedly',
      bodyWritten: false,
    },
    outcome: 'transient',
    reason: 'connection_lost',
    replyClass: 'net',
  },

  // 421
  {
    name: '421 at the greeting (EPROTOCOL)',
    observation: reply('421 4.3.2 Service not available, closing channel', 'CONN', 'EPROTOCOL'),
    outcome: 'transient',
    reason: 'service_unavailable',
    replyClass: '4xx',
    enhancedStatus: '4.3.2',
  },
  {
    name: '421 to EHLO (ECONNECTION)',
    observation: reply('421 mx.example.com Service shutting down', 'EHLO', 'ECONNECTION'),
    outcome: 'transient',
    reason: 'service_unavailable',
    replyClass: '4xx',
  },
  {
    name: '421 4.7.28 rate limited (Gmail)',
    observation: reply(
      '421 4.7.28 Our system has detected an unusual rate of unsolicited mail',
      'RCPT TO',
      'EENVELOPE',
    ),
    outcome: 'throttled',
    reason: 'throttled',
    replyClass: '4xx',
    enhancedStatus: '4.7.28',
  },
  {
    name: '421 too many connections',
    observation: reply(
      '421 Too many concurrent SMTP connections; please try again later',
      'CONN',
      'EPROTOCOL',
    ),
    outcome: 'throttled',
    reason: 'throttled',
    replyClass: '4xx',
  },

  // Transient and throttled 4xx
  {
    name: '450 4.2.0 greylisted at RCPT',
    observation: reply(
      '450 4.2.0 <a@example.org>: Recipient address rejected: Greylisted',
      'RCPT TO',
      'EENVELOPE',
    ),
    outcome: 'transient',
    reason: 'temporary_failure',
    replyClass: '4xx',
    enhancedStatus: '4.2.0',
  },
  {
    name: '451 4.3.0 local error at MAIL FROM',
    observation: reply('451 4.3.0 Error: queue file write error', 'MAIL FROM', 'EENVELOPE'),
    outcome: 'transient',
    reason: 'temporary_failure',
    replyClass: '4xx',
    enhancedStatus: '4.3.0',
  },
  {
    name: '452 4.3.1 insufficient system storage',
    observation: reply('452 4.3.1 Insufficient system storage', 'MAIL FROM', 'EENVELOPE'),
    outcome: 'transient',
    reason: 'temporary_failure',
    replyClass: '4xx',
    enhancedStatus: '4.3.1',
  },
  {
    name: '450 4.7.0 throttled',
    observation: reply('450 4.7.0 Rate limit exceeded, try again later', 'RCPT TO', 'EENVELOPE'),
    outcome: 'throttled',
    reason: 'throttled',
    replyClass: '4xx',
    enhancedStatus: '4.7.0',
  },
  {
    name: '451 4.7.1 any 4.7.x throttles',
    observation: reply('451 4.7.1 Please slow down', 'MAIL FROM', 'EENVELOPE'),
    outcome: 'throttled',
    reason: 'throttled',
    replyClass: '4xx',
    enhancedStatus: '4.7.1',
  },
  {
    name: '451 "too many messages" without enhanced status',
    observation: reply('451 Too many messages from your IP, try later', 'DATA', 'EMESSAGE'),
    outcome: 'throttled',
    reason: 'throttled',
    replyClass: '4xx',
  },
  {
    name: '454 Throttling failure (SES)',
    observation: reply('454 Throttling failure: Maximum sending rate exceeded.', 'DATA', 'EMESSAGE'),
    outcome: 'throttled',
    reason: 'throttled',
    replyClass: '4xx',
  },
  {
    name: '452 4.2.2 mailbox full is transient',
    observation: reply('452 4.2.2 Mailbox full', 'RCPT TO', 'EENVELOPE'),
    outcome: 'transient',
    reason: 'mailbox_full',
    replyClass: '4xx',
    enhancedStatus: '4.2.2',
  },
  {
    name: '552 5.2.2 mailbox full is transient by policy',
    observation: reply('552 5.2.2 <a@example.org>: mailbox full', 'RCPT TO', 'EENVELOPE'),
    outcome: 'transient',
    reason: 'mailbox_full',
    replyClass: '5xx',
    enhancedStatus: '5.2.2',
  },
  {
    name: '550 5.2.2 over quota text',
    observation: reply(
      '550 5.2.2 The email account that you tried to reach is over quota',
      'DATA',
      'EMESSAGE',
    ),
    outcome: 'transient',
    reason: 'mailbox_full',
    replyClass: '5xx',
    enhancedStatus: '5.2.2',
  },

  // Enhanced status class wins
  {
    name: '550 4.2.2: enhanced class 4 wins (transient)',
    observation: reply('550 4.2.2 mailbox full', 'RCPT TO', 'EENVELOPE'),
    outcome: 'transient',
    reason: 'mailbox_full',
    replyClass: '4xx',
    enhancedStatus: '4.2.2',
  },
  {
    name: '550 4.4.1: enhanced class 4 wins (transient)',
    observation: reply('550 4.4.1 Connection timed out to next hop', 'DATA', 'EMESSAGE'),
    outcome: 'transient',
    reason: 'temporary_failure',
    replyClass: '4xx',
    enhancedStatus: '4.4.1',
  },
  {
    name: '450 5.1.1: enhanced class 5 wins (permanent)',
    observation: reply(
      '450 5.1.1 <a@example.org>: Recipient address rejected: User unknown',
      'RCPT TO',
      'EENVELOPE',
    ),
    outcome: 'permanent',
    reason: 'mailbox_unknown',
    replyClass: '5xx',
    enhancedStatus: '5.1.1',
  },

  // Permanent
  {
    name: '550 5.1.1 user unknown at RCPT',
    observation: reply('550 5.1.1 <x@y.example>: user unknown', 'RCPT TO', 'EENVELOPE'),
    outcome: 'permanent',
    reason: 'mailbox_unknown',
    replyClass: '5xx',
    enhancedStatus: '5.1.1',
  },
  {
    name: '550 user unknown without enhanced status',
    observation: reply('550 No such user here', 'RCPT TO', 'EENVELOPE'),
    outcome: 'permanent',
    reason: 'mailbox_unknown',
    replyClass: '5xx',
  },
  {
    name: '550 5.1.2 bad destination domain',
    observation: reply(
      '550 5.1.2 Host unknown (Name server: y.example: host not found)',
      'RCPT TO',
      'EENVELOPE',
    ),
    outcome: 'permanent',
    reason: 'domain_unknown',
    replyClass: '5xx',
    enhancedStatus: '5.1.2',
  },
  {
    name: '553 5.1.3 bad address syntax',
    observation: reply('553 5.1.3 Bad recipient address syntax', 'RCPT TO', 'EENVELOPE'),
    outcome: 'permanent',
    reason: 'address_rejected',
    replyClass: '5xx',
    enhancedStatus: '5.1.3',
  },
  {
    name: '551 at RCPT (user not local)',
    observation: reply('551 User not local; please try <x@z.example>', 'RCPT TO', 'EENVELOPE'),
    outcome: 'permanent',
    reason: 'recipient_rejected',
    replyClass: '5xx',
  },
  {
    name: '553 at RCPT (mailbox name not allowed)',
    observation: reply('553 Requested action not taken: mailbox name not allowed', 'RCPT TO', 'EENVELOPE'),
    outcome: 'permanent',
    reason: 'recipient_rejected',
    replyClass: '5xx',
  },
  {
    name: '554 5.7.1 recipient policy rejection at RCPT',
    observation: reply(
      '554 5.7.1 <x@y.example>: Recipient address rejected: Access denied',
      'RCPT TO',
      'EENVELOPE',
    ),
    outcome: 'permanent',
    reason: 'recipient_rejected',
    replyClass: '5xx',
    enhancedStatus: '5.7.1',
  },
  {
    name: '552 5.3.4 message too big at DATA',
    observation: reply('552 5.3.4 Message size exceeds fixed limit', 'DATA', 'EMESSAGE'),
    outcome: 'permanent',
    reason: 'message_too_large',
    replyClass: '5xx',
    enhancedStatus: '5.3.4',
  },
  {
    name: '552 5.3.4 too big at MAIL FROM (SIZE)',
    observation: reply('552 5.3.4 Message size exceeds fixed limit', 'MAIL FROM', 'EENVELOPE'),
    outcome: 'permanent',
    reason: 'message_too_large',
    replyClass: '5xx',
    enhancedStatus: '5.3.4',
  },
  {
    name: '552 without enhanced status at DATA',
    observation: reply('552 Requested mail action aborted: exceeded storage allocation', 'DATA', 'EMESSAGE'),
    outcome: 'transient',
    reason: 'mailbox_full',
    replyClass: '5xx',
  },
  {
    name: '552 message too large without enhanced status at DATA',
    observation: reply('552 Message too large', 'DATA', 'EMESSAGE'),
    outcome: 'permanent',
    reason: 'message_too_large',
    replyClass: '5xx',
  },
  {
    name: 'nodemailer refuses locally over the advertised SIZE',
    observation: { code: 'EMESSAGE', command: 'MAIL FROM', message: 'Message size larger than allowed 1000' },
    outcome: 'permanent',
    reason: 'message_too_large',
    replyClass: '5xx',
  },
  {
    name: '554 5.6.0 content rejected at DATA',
    observation: reply('554 5.6.0 Message contains invalid header', 'DATA', 'EMESSAGE'),
    outcome: 'permanent',
    reason: 'message_rejected',
    replyClass: '5xx',
    enhancedStatus: '5.6.0',
  },
  {
    name: '550 5.7.1 spam rejection at DATA',
    observation: reply('550 5.7.1 Message rejected as spam', 'DATA', 'EMESSAGE'),
    outcome: 'permanent',
    reason: 'message_rejected',
    replyClass: '5xx',
    enhancedStatus: '5.7.1',
  },
  {
    name: '553 5.1.8 sender domain does not exist at MAIL FROM',
    observation: reply(
      '553 5.1.8 <s@nowhere.example>: Sender address rejected: Domain not found',
      'MAIL FROM',
      'EENVELOPE',
    ),
    outcome: 'permanent',
    reason: 'sender_rejected',
    replyClass: '5xx',
    enhancedStatus: '5.1.8',
  },
  {
    name: '503 bad sequence is a session problem, transient',
    observation: reply('503 5.5.1 Error: need MAIL command', 'RCPT TO', 'EENVELOPE'),
    outcome: 'transient',
    reason: 'bad_command_sequence',
    replyClass: '5xx',
    enhancedStatus: '5.5.1',
  },
  {
    name: 'unknown 5xx code follows its first digit',
    observation: reply('599 something new', 'RSET', 'EPROTOCOL'),
    outcome: 'permanent',
    reason: 'rejected',
    replyClass: '5xx',
  },
  {
    name: 'unknown 4xx code follows its first digit',
    observation: reply('499 something new', 'RSET', 'EPROTOCOL'),
    outcome: 'transient',
    reason: 'temporary_failure',
    replyClass: '4xx',
  },
  {
    name: 'unexpected 3xx reply',
    observation: reply('354 go ahead', 'RSET', 'EPROTOCOL'),
    outcome: 'transient',
    reason: 'unexpected_reply',
    replyClass: 'ambiguous',
  },

  // Configuration: auth
  {
    name: '535 5.7.8 authentication failed',
    observation: reply(
      '535 5.7.8 Error: authentication failed: authentication failure',
      'AUTH PLAIN',
      'EAUTH',
    ),
    outcome: 'config',
    reason: 'auth_failed',
    replyClass: 'auth',
    enhancedStatus: '5.7.8',
  },
  {
    name: '535 without enhanced status and without code',
    observation: {
      responseCode: 535,
      response: '535 Authentication credentials invalid',
      command: 'AUTH LOGIN',
    },
    outcome: 'config',
    reason: 'auth_failed',
    replyClass: 'auth',
  },
  {
    name: '530 5.7.0 authentication required at MAIL FROM',
    observation: reply('530 5.7.0 Authentication required', 'MAIL FROM', 'EENVELOPE'),
    outcome: 'config',
    reason: 'auth_failed',
    replyClass: 'auth',
    enhancedStatus: '5.7.0',
  },
  {
    name: '534 5.7.9 mechanism too weak',
    observation: reply('534 5.7.9 Authentication mechanism is too weak', 'AUTH PLAIN', 'EAUTH'),
    outcome: 'config',
    reason: 'auth_failed',
    replyClass: 'auth',
    enhancedStatus: '5.7.9',
  },
  {
    name: '538 encryption required for auth mechanism',
    observation: reply(
      '538 5.7.11 Encryption required for requested authentication mechanism',
      'AUTH PLAIN',
      'EAUTH',
    ),
    outcome: 'config',
    reason: 'auth_failed',
    replyClass: 'auth',
    enhancedStatus: '5.7.11',
  },
  {
    name: '5.7.0 at AUTH',
    observation: reply('554 5.7.0 Authentication not permitted', 'AUTH PLAIN', 'EAUTH'),
    outcome: 'config',
    reason: 'auth_failed',
    replyClass: 'auth',
    enhancedStatus: '5.7.0',
  },
  {
    name: 'EAUTH without a reply (missing credentials)',
    observation: { code: 'EAUTH', command: 'API', message: 'Missing credentials for "PLAIN"' },
    outcome: 'config',
    reason: 'auth_failed',
    replyClass: 'auth',
  },
  {
    name: 'ENOAUTH',
    observation: { code: 'ENOAUTH', message: 'Authentication info was not provided' },
    outcome: 'config',
    reason: 'auth_failed',
    replyClass: 'auth',
  },
  {
    name: '454 4.7.0 temporary authentication failure is transient',
    observation: reply('454 4.7.0 Temporary authentication failure', 'AUTH PLAIN', 'EAUTH'),
    outcome: 'transient',
    reason: 'auth_unavailable',
    replyClass: 'auth',
    enhancedStatus: '4.7.0',
  },

  // Configuration: relay, greeting, sender
  {
    name: '554 5.7.1 relay access denied at RCPT',
    observation: reply('554 5.7.1 <x@y.example>: Relay access denied', 'RCPT TO', 'EENVELOPE'),
    outcome: 'config',
    reason: 'relay_denied',
    replyClass: '5xx',
    enhancedStatus: '5.7.1',
  },
  {
    name: '550 5.7.1 relaying not permitted',
    observation: reply('550 5.7.1 Relaying not permitted', 'RCPT TO', 'EENVELOPE'),
    outcome: 'config',
    reason: 'relay_denied',
    replyClass: '5xx',
    enhancedStatus: '5.7.1',
  },
  {
    name: '454 4.7.1 relay access denied (deferred form)',
    observation: reply('454 4.7.1 <x@y.example>: Relay access denied', 'RCPT TO', 'EENVELOPE'),
    outcome: 'config',
    reason: 'relay_denied',
    replyClass: '4xx',
    enhancedStatus: '4.7.1',
  },
  {
    name: '553 rcpthosts (qmail relay refusal)',
    observation: reply(
      "553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
      'RCPT TO',
      'EENVELOPE',
    ),
    outcome: 'config',
    reason: 'relay_denied',
    replyClass: '5xx',
  },
  {
    name: '5.7.x at MAIL FROM: sender not permitted',
    observation: reply(
      '553 5.7.1 <s@example.com>: Sender address rejected: not owned by user',
      'MAIL FROM',
      'EENVELOPE',
    ),
    outcome: 'config',
    reason: 'sender_not_permitted',
    replyClass: '5xx',
    enhancedStatus: '5.7.1',
  },
  {
    name: '554 at the greeting',
    observation: reply('554 mx.example.com ESMTP not accepting connections', 'CONN', 'EPROTOCOL'),
    outcome: 'config',
    reason: 'greeting_rejected',
    replyClass: '5xx',
  },
  {
    name: '554 5.7.1 at the greeting (blocklisted)',
    observation: reply('554 5.7.1 Service unavailable; Client host blocked', 'CONN', 'EPROTOCOL'),
    outcome: 'config',
    reason: 'greeting_rejected',
    replyClass: '5xx',
    enhancedStatus: '5.7.1',
  },
  {
    name: '5xx to HELO after EHLO failed',
    observation: reply('550 HELO rejected', 'HELO', 'EPROTOCOL'),
    outcome: 'config',
    reason: 'greeting_rejected',
    replyClass: '5xx',
  },
  {
    name: '550 daily sending quota exceeded throttles, does not bounce',
    observation: reply('554 Throttling failure: Daily message quota exceeded.', 'DATA', 'EMESSAGE'),
    outcome: 'throttled',
    reason: 'throttled',
    replyClass: '5xx',
  },

  // Configuration: TLS
  {
    name: 'ETLS: STARTTLS refused (required but not offered)',
    observation: reply('502 5.5.1 Error: command not implemented', 'STARTTLS', 'ETLS'),
    outcome: 'config',
    reason: 'tls_failed',
    replyClass: 'tls',
    enhancedStatus: '5.5.1',
  },
  {
    name: 'ETLS: handshake failed after STARTTLS',
    observation: {
      code: 'ETLS',
      command: 'STARTTLS',
      message: 'Error initiating TLS - self-signed certificate',
    },
    outcome: 'config',
    reason: 'tls_failed',
    replyClass: 'tls',
  },
  {
    name: 'ESOCKET with a self-signed certificate (implicit TLS)',
    observation: { code: 'ESOCKET', command: 'CONN', message: 'self-signed certificate' },
    outcome: 'config',
    reason: 'tls_failed',
    replyClass: 'tls',
  },
  {
    name: 'ESOCKET unable to verify the first certificate',
    observation: { code: 'ESOCKET', command: 'CONN', message: 'unable to verify the first certificate' },
    outcome: 'config',
    reason: 'tls_failed',
    replyClass: 'tls',
  },
  {
    name: 'ESOCKET with an altname mismatch',
    observation: {
      code: 'ESOCKET',
      command: 'CONN',
      message:
        "Hostname/IP does not match certificate's altnames: Host: relay.example. is not in the cert's altnames: DNS:other.example",
    },
    outcome: 'config',
    reason: 'tls_failed',
    replyClass: 'tls',
  },
  {
    name: 'ESOCKET certificate has expired',
    observation: { code: 'ESOCKET', command: 'CONN', message: 'certificate has expired' },
    outcome: 'config',
    reason: 'tls_failed',
    replyClass: 'tls',
  },
  {
    name: 'CERT_HAS_EXPIRED code',
    observation: { code: 'CERT_HAS_EXPIRED', message: 'certificate has expired' },
    outcome: 'config',
    reason: 'tls_failed',
    replyClass: 'tls',
  },
  {
    name: 'DEPTH_ZERO_SELF_SIGNED_CERT code',
    observation: { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' },
    outcome: 'config',
    reason: 'tls_failed',
    replyClass: 'tls',
  },
  {
    name: 'ERR_TLS_CERT_ALTNAME_INVALID code',
    observation: { code: 'ERR_TLS_CERT_ALTNAME_INVALID' },
    outcome: 'config',
    reason: 'tls_failed',
    replyClass: 'tls',
  },
  {
    name: 'EREQUIRETLS',
    observation: {
      code: 'EREQUIRETLS',
      command: 'MAIL FROM',
      message: 'Server does not support REQUIRETLS extension (RFC 8689)',
    },
    outcome: 'config',
    reason: 'tls_failed',
    replyClass: 'tls',
  },
  {
    name: '530 5.7.0 must issue STARTTLS first',
    observation: reply('530 5.7.0 Must issue a STARTTLS command first', 'MAIL FROM', 'EENVELOPE'),
    outcome: 'config',
    reason: 'tls_required',
    replyClass: 'tls',
    enhancedStatus: '5.7.0',
  },
  {
    name: 'EHLO failed with requireTLS',
    observation: reply('500 5.5.2 Error: bad syntax', 'EHLO', 'ECONNECTION'),
    outcome: 'config',
    reason: 'greeting_rejected',
    replyClass: '5xx',
    enhancedStatus: '5.5.2',
  },

  // Network, DNS, timeouts before the body
  {
    name: 'ECONNREFUSED as code',
    observation: { code: 'ECONNREFUSED', message: 'connect ECONNREFUSED 127.0.0.1:2525' },
    outcome: 'transient',
    reason: 'connection_refused',
    replyClass: 'net',
  },
  {
    name: 'ECONNREFUSED inside ESOCKET (nodemailer keeps it in the text)',
    observation: { code: 'ESOCKET', command: 'CONN', message: 'connect ECONNREFUSED 127.0.0.1:2525' },
    outcome: 'transient',
    reason: 'connection_refused',
    replyClass: 'net',
  },
  {
    name: 'ECONNRESET',
    observation: { code: 'ECONNRESET', message: 'read ECONNRESET' },
    outcome: 'transient',
    reason: 'connection_lost',
    replyClass: 'net',
  },
  {
    name: 'EPIPE',
    observation: { code: 'EPIPE', message: 'write EPIPE' },
    outcome: 'transient',
    reason: 'connection_lost',
    replyClass: 'net',
  },
  {
    name: 'EHOSTUNREACH',
    observation: { code: 'EHOSTUNREACH', message: 'connect EHOSTUNREACH 10.0.0.1:25' },
    outcome: 'transient',
    reason: 'host_unreachable',
    replyClass: 'net',
  },
  {
    name: 'ESOCKET without TLS text',
    observation: { code: 'ESOCKET', command: 'CONN', message: 'socket hang up' },
    outcome: 'transient',
    reason: 'connection_lost',
    replyClass: 'net',
  },
  {
    name: 'ECONNECTION before data (closed unexpectedly)',
    observation: { code: 'ECONNECTION', command: 'CONN', message: 'Connection closed unexpectedly' },
    outcome: 'transient',
    reason: 'connection_lost',
    replyClass: 'net',
  },
  {
    name: 'EAI_AGAIN',
    observation: { code: 'EAI_AGAIN', message: 'getaddrinfo EAI_AGAIN relay.example' },
    outcome: 'transient',
    reason: 'dns_temporary_failure',
    replyClass: 'net',
  },
  {
    name: 'ENOTFOUND: relay host does not resolve',
    observation: { code: 'ENOTFOUND', message: 'getaddrinfo ENOTFOUND relay.example' },
    outcome: 'config',
    reason: 'relay_host_unresolved',
    replyClass: 'dns',
  },
  {
    name: 'EDNS with ENOTFOUND',
    observation: { code: 'EDNS', command: 'CONN', message: 'getaddrinfo ENOTFOUND relay.invalid' },
    outcome: 'config',
    reason: 'relay_host_unresolved',
    replyClass: 'dns',
  },
  {
    name: 'EDNS timeout is transient',
    observation: { code: 'EDNS', command: 'CONN', message: 'DNS lookup for relay.example timed out' },
    outcome: 'transient',
    reason: 'dns_failed',
    replyClass: 'dns',
  },
  {
    name: 'ETIMEDOUT greeting never received',
    observation: { code: 'ETIMEDOUT', command: 'CONN', message: 'Greeting never received' },
    outcome: 'transient',
    reason: 'greeting_timeout',
    replyClass: 'timeout',
  },
  {
    name: 'ETIMEDOUT connection timeout',
    observation: { code: 'ETIMEDOUT', command: 'CONN', message: 'Connection timeout' },
    outcome: 'transient',
    reason: 'timeout',
    replyClass: 'timeout',
  },
  {
    name: 'ETIMEDOUT TLS handshake timed out is a timeout, not a TLS fault',
    observation: { code: 'ETIMEDOUT', command: 'CONN', message: 'TLS handshake timed out' },
    outcome: 'transient',
    reason: 'timeout',
    replyClass: 'timeout',
  },
  {
    name: 'ETIMEDOUT socket idle before data',
    observation: { code: 'ETIMEDOUT', command: 'CONN', message: 'Timeout', bodyWritten: false },
    outcome: 'transient',
    reason: 'timeout',
    replyClass: 'timeout',
  },
  {
    name: 'EPROTOCOL without reply (oversized server response)',
    observation: {
      code: 'EPROTOCOL',
      command: 'CONN',
      message: 'Server response exceeds maximum allowed size',
    },
    outcome: 'transient',
    reason: 'protocol_error',
    replyClass: 'net',
  },

  // Local errors and unknowns
  {
    name: 'EENVELOPE without reply (nodemailer refused the recipient)',
    observation: { code: 'EENVELOPE', command: 'API', message: 'Invalid recipient "x"' },
    outcome: 'permanent',
    reason: 'invalid_envelope',
    replyClass: 'ambiguous',
  },
  {
    name: 'EFILEACCESS',
    observation: { code: 'EFILEACCESS', message: 'File access rejected for /etc/passwd' },
    outcome: 'permanent',
    reason: 'content_access_denied',
    replyClass: 'ambiguous',
  },
  {
    name: 'ECONFIG',
    observation: { code: 'ECONFIG', message: 'Invalid configuration' },
    outcome: 'config',
    reason: 'transport_misconfigured',
    replyClass: 'ambiguous',
  },
  {
    name: 'unknown code without reply is transient',
    observation: { code: 'EWHATEVER', message: 'something odd' },
    outcome: 'transient',
    reason: 'unclassified',
    replyClass: 'ambiguous',
  },
  {
    name: 'empty observation is transient, never permanent',
    observation: {},
    outcome: 'transient',
    reason: 'unclassified',
    replyClass: 'ambiguous',
  },
  {
    name: 'response text without responseCode is still read',
    observation: { response: '550 5.1.1 user unknown', command: 'RCPT TO' },
    outcome: 'permanent',
    reason: 'mailbox_unknown',
    replyClass: '5xx',
    enhancedStatus: '5.1.1',
  },
];

void describe('classifySmtpOutcome', () => {
  for (const c of CASES) {
    void it(`${c.name} -> ${c.outcome}/${c.reason}`, () => {
      const expected: Classification = {
        outcome: c.outcome,
        reason: c.reason,
        replyClass: c.replyClass,
        ...(c.enhancedStatus === undefined ? {} : { enhancedStatus: c.enhancedStatus }),
      };
      assert.deepEqual(classifySmtpOutcome(c.observation), expected);
    });
  }

  void it('has at least 40 distinct cases', () => {
    assert.ok(CASES.length >= 40);
    assert.equal(new Set(CASES.map((c) => c.name)).size, CASES.length);
  });

  void it('reasons are stable snake_case', () => {
    for (const c of CASES) assert.match(classifySmtpOutcome(c.observation).reason, /^[a-z]+(?:_[a-z]+)*$/);
  });

  void it('nothing without a 5xx reply or a known local fault is permanent', () => {
    const noisy: SmtpObservation[] = [
      { message: 'Unexpected error' },
      { code: 'ESTREAM', message: 'stream failed' },
      { code: 'EABORT' },
      { command: 'DATA' },
      { response: 'garbage' },
    ];
    for (const observation of noisy) assert.notEqual(classifySmtpOutcome(observation).outcome, 'permanent');
  });
});

void describe('parseEnhancedStatus', () => {
  const cases: [string | undefined, string | undefined][] = [
    ['550 5.1.1 <x@y>: user unknown', '5.1.1'],
    ['421 4.7.28 rate', '4.7.28'],
    ['250 2.0.0 Ok', '2.0.0'],
    ['550-5.7.1 first line\n550 5.7.1 second', '5.7.1'],
    ['550-Mailbox unavailable\r\n550 5.1.1 user unknown', '5.1.1'],
    ['550 user unknown', undefined],
    ['550 1.2.3 not a class', undefined],
    ['550 5.1.1.1 too many parts', undefined],
    ['5.2.2 mailbox full', '5.2.2'],
    ['', undefined],
    [undefined, undefined],
  ];
  for (const [response, expected] of cases) {
    void it(`${JSON.stringify(response)} -> ${String(expected)}`, () => {
      assert.equal(parseEnhancedStatus(response), expected);
    });
  }
});

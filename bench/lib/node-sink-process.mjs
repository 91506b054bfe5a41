#!/usr/bin/env node
// The fallback sink for machines without Postfix's smtp-sink: a minimal SMTP server on 127.0.0.1:PORT
// that accepts every message, throws it away and prints the running count in smtp-sink's `-c` format
// (`mesg=N` followed by a carriage return). Like smtp-sink it greets at once, announces PIPELINING and
// answers pipelined commands in order.
//   node bench/lib/node-sink-process.mjs PORT
//
// It is not smtp-server: smtp-server waits a fixed 100 ms before every greeting (its early-talker check),
// which would cap a sender that opens a connection per message at under 10 messages a second.
import { createServer } from 'node:net';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  process.stderr.write('usage: node-sink-process.mjs PORT\n');
  process.exit(2);
}
/** Longest command line accepted, in bytes (RFC 5321 allows 512; extensions add a little). */
const MAX_LINE = 4096;
const END_OF_DATA = '\r\n.\r\n';
let received = 0;

const server = createServer((socket) => {
  socket.setNoDelay(true);
  let buffer = '';
  let inData = false;
  socket.setEncoding('latin1');
  socket.on('error', () => undefined);
  socket.write('220 bench-sink ESMTP\r\n');
  socket.on('data', (/** @type {string} */ chunk) => {
    buffer += chunk;
    let replies = '';
    for (;;) {
      if (inData) {
        const end = buffer.indexOf(END_OF_DATA);
        if (end < 0) {
          buffer = buffer.slice(-(END_OF_DATA.length - 1)); // all that can hold a split terminator
          break;
        }
        buffer = buffer.slice(end + END_OF_DATA.length);
        inData = false;
        received += 1;
        process.stdout.write(`mesg=${received}\r`);
        replies += '250 2.0.0 Ok: queued\r\n';
        continue;
      }
      const eol = buffer.indexOf('\n');
      if (eol < 0) {
        if (buffer.length > MAX_LINE) {
          socket.end('500 5.5.2 Line too long\r\n');
          return;
        }
        break;
      }
      const line = buffer.slice(0, eol).replace(/\r$/, '');
      buffer = buffer.slice(eol + 1);
      const verb = line.slice(0, 4).toUpperCase();
      if (verb === 'EHLO') replies += '250-bench-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SMTPUTF8\r\n';
      else if (verb === 'HELO') replies += '250 bench-sink\r\n';
      else if (verb === 'MAIL') replies += '250 2.1.0 Ok\r\n';
      else if (verb === 'RCPT') replies += '250 2.1.5 Ok\r\n';
      else if (verb === 'DATA') {
        replies += '354 End data with <CR><LF>.<CR><LF>\r\n';
        inData = true;
        // The CRLF that ended the DATA line belongs to the terminator of an empty message.
        buffer = `\r\n${buffer}`;
      } else if (verb === 'RSET' || verb === 'NOOP') replies += '250 2.0.0 Ok\r\n';
      else if (verb === 'QUIT') {
        socket.end(`${replies}221 2.0.0 Bye\r\n`);
        return;
      } else replies += '502 5.5.2 Error: command not recognized\r\n';
    }
    if (replies) socket.write(replies);
  });
});
server.on('error', (err) => {
  process.stderr.write(`sink error: ${err.message}\n`);
  process.exit(1);
});
server.listen(port, '127.0.0.1');
for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => process.exit(0));
}

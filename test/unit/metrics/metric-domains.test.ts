import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  DEFAULT_METRIC_DOMAINS,
  DOMAIN_ALIASES,
  InvalidMetricDomainsError,
  MAX_METRIC_DOMAINS,
  OTHER_DOMAIN,
  createDomainLabeler,
  domainLabelValues,
  metricDomainProblems,
  splitMetricDomains,
} from '@mailroom/metrics';

describe('domain label', () => {
  const label = createDomainLabeler(['gmail.com', 'outlook.com', 'xn--bcher-kva.example']);

  it('is the recipient domain when it is listed, `other` otherwise', () => {
    assert.equal(label('ada@gmail.com'), 'gmail.com');
    assert.equal(label('bob@outlook.com'), 'outlook.com');
    assert.equal(label('carol@example.org'), OTHER_DOMAIN);
    assert.equal(label('dave@mail.gmail.com'), OTHER_DOMAIN, 'a subdomain is another domain');
    assert.equal(label('eve@gmail.com.evil.example'), OTHER_DOMAIN);
  });

  it('ignores case and a trailing dot, and reads the domain after the last @', () => {
    assert.equal(label('Ada@GMail.COM'), 'gmail.com');
    assert.equal(label('ada@gmail.com.'), 'gmail.com');
    assert.equal(label('"a@b"@gmail.com'), 'gmail.com');
    assert.equal(label('gmail.com'), 'gmail.com', 'a bare domain is read as one');
  });

  it('counts an IDN under its punycode form', () => {
    assert.equal(label('leser@bücher.example'), 'xn--bcher-kva.example');
    assert.equal(label('leser@BÜCHER.example'), 'xn--bcher-kva.example');
    assert.equal(label('leser@bücherei.example'), OTHER_DOMAIN);
  });

  it('counts a provider alias under the listed domain, only when that domain is listed', () => {
    assert.equal(label('ada@googlemail.com'), 'gmail.com');
    assert.equal(label('bob@hotmail.com'), 'outlook.com');
    assert.equal(label('bob@live.co.uk'), 'outlook.com');
    assert.equal(label('carol@ymail.com'), OTHER_DOMAIN, 'yahoo.com is not on this list');
    const withHotmail = createDomainLabeler(['outlook.com', 'hotmail.com']);
    assert.equal(withHotmail('bob@hotmail.com'), 'hotmail.com', 'a listed alias keeps its own series');
  });

  it('is `other` for a missing, empty or unreadable address', () => {
    assert.equal(label(undefined), OTHER_DOMAIN);
    assert.equal(label(''), OTHER_DOMAIN);
    assert.equal(label('ada@'), OTHER_DOMAIN);
    assert.equal(label('ada@[127.0.0.1]'), OTHER_DOMAIN);
    assert.equal(label('ada@\u0000gmail.com'), OTHER_DOMAIN);
  });

  it('never yields a value outside the list and `other`, whatever the input', () => {
    const allowed = new Set(domainLabelValues(['gmail.com', 'outlook.com', 'xn--bcher-kva.example']));
    const inputs = [
      ...Array.from({ length: 2000 }, (_, i) => `user${i}@d${i}.example`),
      ...Array.from({ length: 200 }, (_, i) => `x@${String.fromCharCode(0x41 + (i % 60))}${i}.test`),
      'a@b@c@gmail.com',
      '@@@',
      'ünïcødé@ëxämplé.ïdn',
      'x@'.repeat(500),
    ];
    for (const input of inputs) assert.ok(allowed.has(label(input)), input);
  });

  it('defaults to the big mailbox providers, within the limit, each alias pointing at one of them', () => {
    assert.ok(DEFAULT_METRIC_DOMAINS.length <= MAX_METRIC_DOMAINS);
    assert.deepEqual(metricDomainProblems(DEFAULT_METRIC_DOMAINS), []);
    const byDefault = createDomainLabeler();
    assert.equal(byDefault('ada@gmail.com'), 'gmail.com');
    assert.equal(byDefault('ada@icloud.com'), 'icloud.com');
    for (const [alias, target] of Object.entries(DOMAIN_ALIASES)) {
      assert.ok(DEFAULT_METRIC_DOMAINS.includes(target), `${alias} -> ${target} is a default domain`);
      assert.ok(!DEFAULT_METRIC_DOMAINS.includes(alias), `${alias} is not itself a default domain`);
      assert.equal(byDefault(`x@${alias}`), target);
    }
  });
});

describe('domain list setting', () => {
  it('splits on commas and white space, lower-cases and converts IDNs', () => {
    assert.deepEqual(splitMetricDomains(' Gmail.com,outlook.com\n  bücher.example,, '), [
      'gmail.com',
      'outlook.com',
      'xn--bcher-kva.example',
    ]);
    assert.deepEqual(splitMetricDomains(''), []);
  });

  it('names every problem: too many, duplicates, `other`, not a domain name', () => {
    const tooMany = Array.from({ length: MAX_METRIC_DOMAINS + 1 }, (_, i) => `d${i}.example`);
    assert.deepEqual(metricDomainProblems(tooMany), [
      `lists ${MAX_METRIC_DOMAINS + 1} domains; at most ${MAX_METRIC_DOMAINS} keep the series bounded`,
    ]);
    assert.deepEqual(
      metricDomainProblems(Array.from({ length: MAX_METRIC_DOMAINS }, (_, i) => `d${i}.ex`)),
      [],
    );
    assert.deepEqual(metricDomainProblems(['gmail.com', 'gmail.com']), ['"gmail.com" is listed twice']);
    assert.deepEqual(metricDomainProblems(['other']), ['"other" is the label of unlisted domains']);
    for (const bad of [
      'localhost',
      'Gmail.com',
      'gmail..com',
      '-a.example',
      'a_b.example',
      'ada@gmail.com',
    ]) {
      assert.deepEqual(metricDomainProblems([bad]), [`"${bad}" is not a lower-case domain name`], bad);
    }
    assert.deepEqual(metricDomainProblems([]), []);
  });

  it('refuses a bad list when the labeler is built', () => {
    assert.throws(
      () => createDomainLabeler(['gmail.com', 'other']),
      (err: unknown) =>
        err instanceof InvalidMetricDomainsError &&
        err.code === 'ERR_INVALID_ARG_VALUE' &&
        err.problems.length === 1,
    );
  });
});

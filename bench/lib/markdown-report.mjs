/**
 * @typedef {object} ReportInput
 * @property {number} n
 * @property {number} rounds
 * @property {string} sink the sink that counted (smtp-sink or node)
 * @property {number} connections
 * @property {number} rttMs
 * @property {number} steadyMaxS
 * @property {import('./machine-facts.mjs').MachineFacts} machine
 * @property {import('./summarize-rounds.mjs').SystemSummary[]} summaries
 * @property {string[]} mailroomIds the Mailroom systems (the default one first, then the variants): each
 *   gets a column of its ratio to every system
 * @property {{ id: string, reason: string }[]} skipped
 */

/** Below this share of one core, a command is left out of a per-command line. */
const MIN_DAEMON_PERCENT = 1;
/** Processes that are the same in every system's run: left out of the memory table. */
const SHARED_PROCESSES = new Set(['smtp sink', 'latency proxy', 'bench driver']);

/**
 * The results as Markdown: one row per system (throughput, Mailroom's ratio to it, run time, CPU per
 * process), the machine's load during the runs, and the memory of each system's processes.
 * @param {ReportInput} input
 * @returns {string}
 */
export function markdownReport(input) {
  const { n, rounds, sink, connections, rttMs, machine, summaries, mailroomIds, skipped } = input;
  const path = rttMs > 0 ? `${rttMs} ms round trip added by the latency proxy` : 'no added latency';
  const lines = [
    `### Mailroom benchmark: ${count(n)} messages per run, ${rounds} round(s), sink ${sink}, ` +
      `${connections} connections, ${path}`,
    '',
    `Machine: ${machine.nproc} cores (${machine.cpuModel}), Node ${machine.node}, redis ${machine.redis ?? '-'}, ` +
      `Postfix ${machine.postfix ?? '-'}; load average at start ${machine.loadAverage.join(' / ')}. ` +
      `Code: commit ${machine.commit ?? '-'}` +
      `${machine.uncommittedFiles ? ` with ${machine.uncommittedFiles} uncommitted file(s) under apps/ and packages/` : ''}.`,
    'Figures are median [min–max] over the rounds. "X ÷" is system X\'s msgs/s divided by the row\'s, ' +
      'taken round by round. "CPU ms/msg" adds up the system\'s processes and the benchmark driver (the ' +
      `producer of the queue-based systems). CPU % is of one core (${machine.nproc * 100} % = the whole machine).`,
    '',
    `| system | msgs/s | ${mailroomIds.map((id) => `${id} ÷ | `).join('')}run s | hand-over msgs/s | CPU ms/msg | CPU % by process (median) |`,
    `|---|---|${mailroomIds.map(() => '---|').join('')}---|---|---|---|`,
  ];
  for (const s of summaries) {
    const failed = s.failed > 0 ? ` (${s.failed} of ${s.ok + s.failed} runs failed)` : '';
    const ratios = mailroomIds.map((id) => {
      if (id === s.id) return '1';
      // The Mailroom system's own summary holds its ratio to every other system.
      const mine = summaries.find((m) => m.id === id);
      return fmt(mine?.ratioTo[s.id], 2);
    });
    lines.push(
      `| ${s.label}${failed} | ${fmt(s.msgsPerSecond, 0)} | ${ratios.map((r) => `${r} | `).join('')}${fmt(s.seconds, 1, false)} | ` +
        `${fmt(s.handOverPerSecond, 0, false)} | ${fmt(s.cpuMsPerMessage, 2, false)} | ` +
        `${Object.entries(s.cpuPercent)
          .map(([name, v]) => `${name} ${Math.round(v.median)}`)
          .join(', ')} |`,
    );
  }
  lines.push(
    '',
    'Machine during the runs, % of both cores (not charged to the measured processes: "unattributed", % of one core):',
    '',
    '| system | busy % | kernel % | interrupts % | steal % | unattributed |',
    '|---|---|---|---|---|---|',
  );
  for (const s of summaries) {
    const b = s.box;
    lines.push(
      `| ${s.label} | ${fmt(b.busyPercent, 0)} | ${fmt(b.systemPercent, 0)} | ${fmt(b.irqPercent, 0)} | ` +
        `${fmt(b.stealPercent, 1)} | ${fmt(b.othersPercent, 0)} |`,
    );
  }
  lines.push(
    '',
    "Resident memory (RSS) of each system's processes at the start and the end of the measured window, MiB (median):",
    '',
    '| system | process | start | end |',
    '|---|---|---|---|',
  );
  for (const s of summaries) {
    for (const [name, { startMiB, endMiB }] of Object.entries(s.rss)) {
      if (SHARED_PROCESSES.has(name)) continue;
      lines.push(`| ${s.label} | ${name} | ${fmt(startMiB, 0, false)} | ${fmt(endMiB, 0, false)} |`);
    }
  }
  for (const s of summaries) {
    for (const [target, commands] of Object.entries(s.cpuByCommand)) {
      const parts = Object.entries(commands)
        .filter(([, v]) => v.median >= MIN_DAEMON_PERCENT)
        .sort((a, b) => b[1].median - a[1].median)
        .map(([comm, v]) => `${comm} ${Math.round(v.median)}`);
      // A breakdown of one command says nothing the main table does not.
      if (parts.length < 2) continue;
      lines.push(
        '',
        `${s.label}, ${target}, by command, % of one core (approximate: processes shorter than 0.25 s are missed): ${parts.join(', ')}.`,
      );
    }
  }
  for (const s of summaries) {
    if (s.timeBoxed > 0) {
      lines.push(
        '',
        `${s.label}: ${s.timeBoxed} of ${s.ok} runs stopped at the ${input.steadyMaxS} s time box ` +
          `(it has no queue, so its rate is steady); the sink counted ${fmt(s.delivered, 0)} messages.`,
      );
    }
    if (s.proxy) {
      lines.push(
        '',
        `${s.label}: ${count(s.proxy.connections)} connections through the latency proxy in its busiest run, ` +
          `at most ${count(s.proxy.peakInUse)} in use at once (${count(s.proxy.peakOpen)} open, with those ` +
          'closing after QUIT).',
      );
    }
    if (s.versions.length > 0) {
      lines.push(
        '',
        s.versions.length === 1
          ? `${s.label}: build ${s.versions[0]} in every run.`
          : `${s.label}: WARNING: its runs used ${s.versions.length} different builds (${s.versions.join(', ')}).`,
      );
    }
    const redisBytes = s.extra.redisBytesPerMessage;
    if (redisBytes) {
      lines.push(
        '',
        `${s.label}: Redis holds ${fmt(redisBytes, 0)} bytes more per message after the run than before it ` +
          '(INFO used_memory).',
      );
    }
    if (s.duplicates > 0)
      lines.push('', `${s.label}: the sink counted up to ${s.duplicates} messages beyond N (duplicates).`);
  }
  for (const { id, reason } of skipped) lines.push('', `Not run: ${id}: ${reason}.`);
  return `${lines.join('\n')}\n`;
}

/**
 * @param {import('./stats.mjs').Spread | undefined} s
 * @param {number} digits
 * @param {boolean} [withRange] default true
 */
function fmt(s, digits, withRange = true) {
  if (!s) return '–';
  const f = (/** @type {number} */ v) => (digits === 0 ? count(Math.round(v)) : v.toFixed(digits));
  return withRange && s.n > 1 ? `${f(s.median)} [${f(s.min)}–${f(s.max)}]` : f(s.median);
}

/** @param {number} v */
function count(v) {
  return v.toLocaleString('en-US');
}

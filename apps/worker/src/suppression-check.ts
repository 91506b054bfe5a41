import type { SuppressionEntry, SuppressionStore } from '@mailroom/queue';

interface Pending {
  readonly scope: string;
  readonly address: string;
  readonly resolve: (entry: SuppressionEntry | undefined) => void;
  readonly reject: (err: unknown) => void;
}

/**
 * The pre-send suppression check, coalesced: every check asked for in the same turn of the event loop (the
 * members of a batch, concurrent single sends) goes to Redis as one `checkEach` call, one round trip,
 * instead of one each. Each caller still gets its own answer, or the shared error.
 */
export function coalescedSuppressionCheck(
  store: Pick<SuppressionStore, 'checkEach'>,
  maxBatch = 1000,
): (scope: string, address: string) => Promise<SuppressionEntry | undefined> {
  let pending: Pending[] = [];
  let scheduled = false;

  const flush = (): void => {
    scheduled = false;
    const batch = pending;
    pending = [];
    for (let start = 0; start < batch.length; start += maxBatch) {
      const part = batch.slice(start, start + maxBatch);
      store.checkEach(part).then(
        (entries) => part.forEach((p, i) => p.resolve(entries[i])),
        (err: unknown) => part.forEach((p) => p.reject(err)),
      );
    }
  };

  return (scope, address) =>
    new Promise((resolve, reject) => {
      pending.push({ scope, address, resolve, reject });
      if (!scheduled) {
        scheduled = true;
        setImmediate(flush);
      }
    });
}

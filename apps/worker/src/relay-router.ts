import pLimit, { type LimitFunction } from 'p-limit';
import type { LimitScope, RateLimiter } from '@mailroom/queue';
import type { Sender } from '@mailroom/smtp';
import type { RelayCircuit } from './relay-circuit.js';
import type { DomainGroup, RelayDefinition, RoutingConfig, ScopeLimits } from './relays-config.js';

/** A relay as the processor uses it: its definition, its SMTP pool and its health. */
export interface RelayHandle {
  readonly name: string;
  readonly definition: RelayDefinition;
  readonly sender: Sender;
  readonly circuit: RelayCircuit;
  /** Its rate-limit scope. */
  readonly scope: LimitScope;
}

/** Where a recipient domain belongs for limits: a named group, the domain itself, or `other`. */
export interface DomainScope {
  /** The group name (`gmail`, `other`) or the domain, for logs and status. */
  readonly name: string;
  readonly scope: LimitScope;
  /** Local bound on sends in flight to the group, when configured. */
  readonly local?: LimitFunction;
}

function limitScope(name: string, limits: ScopeLimits, basePerSecond: number): LimitScope {
  return {
    name,
    ...(limits.perSecond === undefined ? {} : { perSecond: limits.perSecond }),
    ...(limits.burstMs === undefined ? {} : { burstMs: limits.burstMs }),
    ...(limits.quotas.length === 0 ? {} : { quotas: limits.quotas }),
    adaptiveBasePerSecond: basePerSecond,
  };
}

const isLimited = (s: LimitScope): boolean => s.perSecond !== undefined || (s.quotas?.length ?? 0) > 0;

/**
 * Chooses a relay for each message and the limit scopes its send must pass:
 * - routing: relays whose rules match the From domain or a tag, else the relays without rules;
 * - among those whose circuit is closed, smooth weighted round robin (exact shares, no clumping);
 * - scopes: the relay, the recipient's domain group (or its domain, or `other`), and the campaign when
 *   campaigns are limited.
 * The adaptive factors of all scopes are read from Redis once a second, so a send to a scope that is neither
 * limited nor cut costs no Redis call at all.
 */
export class RelayRouter {
  readonly relays: readonly RelayHandle[];
  private readonly byDomain = new Map<string, DomainGroup>();
  private readonly groupScopes = new Map<string, DomainScope>();
  private readonly swrr = new Map<string, Map<string, number>>();
  /** Scopes with an adaptive cut in force (factor < 1), cluster-wide, as of the last refresh. */
  private cut = new Map<string, number>();
  private timer: NodeJS.Timeout | undefined;

  constructor(
    readonly config: RoutingConfig,
    relays: readonly Omit<RelayHandle, 'scope'>[],
    private readonly limiter: RateLimiter,
  ) {
    this.relays = relays.map((r) => ({
      ...r,
      scope: limitScope(`relay:${r.name}`, r.definition.limits, config.adaptive.basePerSecond),
    }));
    for (const group of config.domainGroups) {
      for (const d of group.domains) this.byDomain.set(d, group);
      this.groupScopes.set(group.name, {
        name: group.name,
        scope: limitScope(`group:${group.name}`, group.limits, config.adaptive.basePerSecond),
        ...(group.maxConcurrency === undefined ? {} : { local: pLimit(group.maxConcurrency) }),
      });
    }
    this.groupScopes.set('other', {
      name: 'other',
      scope: limitScope('group:other', config.ungrouped.limits, config.adaptive.basePerSecond),
    });
  }

  /** The relays a message may use by the routing rules (whatever their health). */
  candidates(fromDomain: string, tags: readonly string[]): readonly RelayHandle[] {
    const matched = this.relays.filter(
      (r) =>
        r.definition.route.senderDomains.includes(fromDomain) ||
        r.definition.route.tags.some((t) => tags.includes(t)),
    );
    if (matched.length > 0) return matched;
    return this.relays.filter(
      (r) => r.definition.route.senderDomains.length === 0 && r.definition.route.tags.length === 0,
    );
  }

  /** The next relay for a message among `candidates`, skipping `tried` ones and open circuits. */
  pick(candidates: readonly RelayHandle[], tried: ReadonlySet<string>): RelayHandle | undefined {
    const usable = candidates.filter((r) => !tried.has(r.name) && r.circuit.isAvailable());
    if (usable.length <= 1) return usable[0];
    const key = usable.map((r) => r.name).join(',');
    let current = this.swrr.get(key);
    if (!current) {
      current = new Map(usable.map((r) => [r.name, 0]));
      this.swrr.set(key, current);
    }
    let total = 0;
    let best: RelayHandle | undefined;
    for (const r of usable) {
      const w = (current.get(r.name) ?? 0) + r.definition.weight;
      current.set(r.name, w);
      total += r.definition.weight;
      if (best === undefined || w > current.get(best.name)!) best = r;
    }
    current.set(best!.name, current.get(best!.name)! - total);
    return best;
  }

  /** When the first of `candidates` may be usable again (ms since the epoch). */
  nextOpening(candidates: readonly RelayHandle[]): number {
    const times = candidates.map((r) => r.circuit.openUntil).filter((t) => t > 0);
    return times.length === 0 ? Date.now() + 1000 : Math.min(...times);
  }

  /** True when no relay can take mail now (every circuit open). */
  allOpen(): boolean {
    return this.relays.every((r) => !r.circuit.isAvailable());
  }

  /** The limit scope of a recipient domain. */
  domainScope(domain: string): DomainScope {
    const group = this.byDomain.get(domain);
    if (group) return this.groupScopes.get(group.name)!;
    if (this.config.ungrouped.scope === 'other') return this.groupScopes.get('other')!;
    return {
      name: domain,
      scope: limitScope(`domain:${domain}`, this.config.ungrouped.limits, this.config.adaptive.basePerSecond),
    };
  }

  /** The scopes a send must pass, or [] when none of them is limited or cut (then no Redis call is made). */
  scopesFor(relay: RelayHandle, domain: DomainScope, campaign: string | undefined): LimitScope[] {
    const scopes = [relay.scope, domain.scope];
    const limits = this.config.campaignLimits;
    if (campaign !== undefined && (limits.perSecond !== undefined || limits.quotas.length > 0)) {
      scopes.push(limitScope(`campaign:${campaign}`, limits, this.config.adaptive.basePerSecond));
    }
    return scopes.some((s) => isLimited(s) || this.cut.has(s.name)) ? scopes : [];
  }

  /** The rate in force per relay or group (configured rate times its adaptive factor), for metrics. */
  currentRates(kind: 'relay' | 'domain_group'): Map<string, number> {
    const out = new Map<string, number>();
    const entries =
      kind === 'relay'
        ? this.relays.map((r) => [r.name, r.scope] as const)
        : [...this.groupScopes.values()].map((g) => [g.name, g.scope] as const);
    for (const [name, scope] of entries) {
      const factor = this.cut.get(scope.name) ?? 1;
      const base = scope.perSecond ?? (factor < 1 ? scope.adaptiveBasePerSecond : undefined);
      if (base !== undefined) out.set(name, base * factor);
    }
    return out;
  }

  /** Reads which scopes are cut, cluster-wide. */
  async refresh(): Promise<void> {
    this.cut = await this.limiter.cutScopes();
  }

  /** Refreshes the cut scopes every `intervalMs` until stop(). */
  start(intervalMs = 1000, onError: (err: unknown) => void = () => {}): void {
    const tick = () => {
      this.refresh()
        .catch(onError)
        .finally(() => {
          if (this.timer) this.timer = setTimeout(tick, intervalMs);
        });
    };
    this.timer = setTimeout(tick, 0);
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    for (const r of this.relays) r.circuit.dispose();
  }
}

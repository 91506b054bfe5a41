import type { BounceClass } from './feedback-report.js';
import { enhancedStatusIn, replyCodeIn } from './smtp-reply-text.js';

/**
 * Hard or soft by the status class, else by the enhanced status or basic reply code in the diagnostic;
 * `otherwise` when none of them says.
 */
export function bounceClass(
  status: string | undefined,
  diagnostic: string | undefined,
  otherwise: BounceClass,
): BounceClass {
  const digit =
    status?.charAt(0) ??
    enhancedStatusIn(diagnostic)?.charAt(0) ??
    String(replyCodeIn(diagnostic) ?? '').charAt(0);
  if (digit === '4') return 'soft';
  if (digit === '5') return 'hard';
  return otherwise;
}

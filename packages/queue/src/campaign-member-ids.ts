import { isMessageId, newMessageId } from '@mailroom/core';

/**
 * Campaign member ids are derived, not drawn: member `i` of a campaign is the campaign id's first 19
 * characters followed by `i + 1` in 7 base32 digits. A campaign id ends in seven zeros (so it is itself a
 * valid message id and no member's), which makes the derivation reversible: any member id names its
 * campaign and its position. Materialising a chunk twice therefore writes the same ids and Message-IDs,
 * and the status of a recipient that was never materialised can be answered from its chunk.
 *
 * The ids are computed here only (the materialise script is given them), so there is one derivation.
 * A member id is a valid message id (26 characters of lower-case Crockford base32), so bounce and
 * feedback parsing treat it like any other. The 19-character stem keeps 45 random bits of the campaign id.
 */
const ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
/** Characters of a campaign id shared by its members: 10 of time, 9 random. */
export const CAMPAIGN_ID_STEM_CHARS = 19;
const INDEX_CHARS = 26 - CAMPAIGN_ID_STEM_CHARS;
const INDEX_ZERO = '0'.repeat(INDEX_CHARS);
/** Most members one campaign can have (the index digits count from 1; all zeros is the campaign). */
export const MAX_CAMPAIGN_MEMBERS = 32 ** INDEX_CHARS - 1;
const CHUNKED_CAMPAIGN_ID = new RegExp(`^[0-9a-hjkmnp-tv-z]{${CAMPAIGN_ID_STEM_CHARS}}${INDEX_ZERO}$`);

/** A new campaign id: a message id of `now` whose last seven characters are zeros. */
export function newCampaignId(now: number = Date.now()): string {
  return newMessageId(now).slice(0, CAMPAIGN_ID_STEM_CHARS) + INDEX_ZERO;
}

/** True for an id newCampaignId could have returned (a campaign whose members' ids are derived). */
export function isChunkedCampaignId(id: string): boolean {
  return CHUNKED_CAMPAIGN_ID.test(id);
}

/** The id of member `index` (0-based, in upload order of the accepted recipients) of a campaign. */
export function campaignMemberId(campaignId: string, index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= MAX_CAMPAIGN_MEMBERS) {
    throw new RangeError(`campaign member index out of range: ${index}`);
  }
  let n = index + 1;
  let digits = '';
  for (let i = 0; i < INDEX_CHARS; i += 1) {
    digits = ALPHABET.charAt(n % 32) + digits;
    n = Math.floor(n / 32);
  }
  return campaignId.slice(0, CAMPAIGN_ID_STEM_CHARS) + digits;
}

/**
 * The campaign and position a member id would belong to, or undefined when it cannot be a member id. Any
 * message id decodes to a candidate; whether that campaign exists (and has that many members) is for the
 * caller to check.
 */
export function campaignMemberOf(id: string): { campaign: string; index: number } | undefined {
  if (!isMessageId(id)) return undefined;
  let n = 0;
  for (const ch of id.slice(CAMPAIGN_ID_STEM_CHARS)) n = n * 32 + ALPHABET.indexOf(ch);
  if (n === 0) return undefined;
  return { campaign: id.slice(0, CAMPAIGN_ID_STEM_CHARS) + INDEX_ZERO, index: n - 1 };
}

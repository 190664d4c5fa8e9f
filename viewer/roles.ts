import type { Role } from './api.js';

/**
 * The API's role ladder (docs/api.md, Authentication): each role can do what the ones below it
 * can. The console hides actions the role cannot take; the API refuses them anyway (API_FORBIDDEN).
 */
const roleRank: Readonly<Record<Role, number>> = { viewer: 0, operator: 1, approver: 2, admin: 3 };

export function roleAtLeast(role: Role | undefined, floor: Role): boolean {
  return role !== undefined && roleRank[role] !== undefined && roleRank[role] >= roleRank[floor];
}

/**
 * The startup packet's `user` names what the agent wants: `target` or
 * `role@target`. The database comes from the target's config; a client's
 * `database` parameter is accepted only if it names the same one.
 */
export interface LoginName {
  target: string;
  /** The database role the agent asks to act as, when given. */
  role: string | null;
}

export function parseLoginName(user: string): LoginName | { problem: string } {
  const at = user.lastIndexOf('@');
  const target = at === -1 ? user : user.slice(at + 1);
  const role = at === -1 ? null : user.slice(0, at);
  if (target === '' || role === '') {
    return { problem: `user "${user}" does not name a target: connect as user=<target> or user=<role>@<target>` };
  }
  return { target, role };
}

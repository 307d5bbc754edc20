#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../engine/config/load.js';
import { BundleError } from '../engine/bundle/errors.js';
import { UnresolvedSecretError } from '../engine/config/secret.js';
import { ApiError } from './api-client.js';
import { approvalsCommand } from './commands/approvals.js';
import { auditCommand } from './commands/audit.js';
import { authorizeCommand } from './commands/authorize.js';
import { bundleCommand } from './commands/bundle.js';
import { maskingCommand } from './commands/masking.js';
import { policyCommand } from './commands/policy.js';
import { serveCommand } from './commands/serve.js';
import { sessionsCommand } from './commands/sessions.js';
import { tokenCommand } from './commands/token.js';
import { UsageError } from './io.js';

const program = new Command('gatehouse')
  .description('Policy-as-code access gateway for autonomous agents.')
  .version('0.1.0')
  .showHelpAfterError('(add --help for usage)')
  .exitOverride()
  .addCommand(serveCommand())
  .addCommand(policyCommand())
  .addCommand(bundleCommand())
  .addCommand(tokenCommand())
  .addCommand(auditCommand())
  .addCommand(authorizeCommand())
  .addCommand(approvalsCommand())
  .addCommand(sessionsCommand())
  .addCommand(maskingCommand());

// Added commands do not inherit these settings; without them a subcommand's
// usage mistake would exit 1 from inside commander, past reportError.
(function inherit(command: Command): void {
  for (const sub of command.commands) {
    sub.exitOverride().showHelpAfterError('(add --help for usage)');
    inherit(sub);
  }
})(program);

// `gatehouse sessions list | head`: the reader leaving early is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  process.exit(0);
});

try {
  await program.parseAsync(process.argv);
} catch (err) {
  process.exitCode = reportError(err);
}

/** Known failures get one clear line and no stack trace; exit 2 means the user must fix something. */
function reportError(err: unknown): number {
  // Commander has printed its message; 0 is --help or --version, anything else is a usage mistake.
  if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : 2;
  if (err instanceof ConfigError || err instanceof UsageError || err instanceof UnresolvedSecretError) {
    console.error(`gatehouse: ${err.message}`);
    return 2;
  }
  if (err instanceof ApiError) {
    console.error(`gatehouse: ${err.message}`);
    return 1;
  }
  if (err instanceof BundleError) {
    console.error(`gatehouse: bundle refused (${err.kind}): ${err.message}`);
    return 1;
  }
  console.error(`gatehouse: ${(err as Error).stack ?? String(err)}`);
  return 1;
}

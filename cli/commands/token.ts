import { Command } from 'commander';
import { readConfig } from '../config.js';
import { DevIssuerError, MAX_DEV_TOKEN_TTL_SECONDS, mintDevToken } from '../../engine/identity/dev-issuer.js';
import { parseDurationSeconds } from '../duration.js';
import { UsageError } from '../io.js';

interface TokenOptions {
  config: string;
  sub: string;
  groups: string;
  act?: string;
  ttl: string;
  human?: boolean;
}

export function tokenCommand(): Command {
  return new Command('token')
    .description('Mint a short-lived token from the development issuer (identity.dev_issuer). For development only.')
    .requiredOption('-c, --config <file>', 'gatehouse.yaml with identity.dev_issuer.enabled: true')
    .requiredOption('--sub <subject>', 'who acts: the agent, or the human with --human')
    .option('--groups <list>', 'comma-separated groups, e.g. analysts,oncall', '')
    .option('--act <human>', 'the human the agent acts for (RFC 8693 delegation)')
    .option('--ttl <duration>', 'lifetime, e.g. 90s, 15m, 1h', '15m')
    .option('--human', 'the subject is a person, not an agent')
    .addHelpText('after', `
Prints only the token on standard output, e.g.
  export TOKEN=$(gatehouse token -c gatehouse.yaml --sub agent-1 --groups analysts --act alice)`)
    .action(async (options: TokenOptions) => {
      const ttlSeconds = parseDurationSeconds(options.ttl);
      if (ttlSeconds === undefined || ttlSeconds < 1 || ttlSeconds > MAX_DEV_TOKEN_TTL_SECONDS) {
        throw new UsageError(`--ttl ${JSON.stringify(options.ttl)}: expected a duration from 1s to 24h, e.g. 90s, 15m or 1h`);
      }
      if (options.act !== undefined && options.human) {
        throw new UsageError('--act and --human exclude each other: with --act the subject is an agent acting for that human');
      }
      const config = readConfig(options.config);
      if (!config.identity.dev_issuer?.enabled) {
        throw new UsageError(`the dev issuer is not enabled in ${options.config}; set identity.dev_issuer: {enabled: true, key_file: ...} (development only)`);
      }
      const groups = options.groups.split(',').map((g) => g.trim()).filter((g) => g !== '');
      try {
        const token = await mintDevToken(config.identity.dev_issuer, {
          sub: options.sub,
          groups,
          ttlSeconds,
          agent: !options.human,
          ...(options.act !== undefined && { act: options.act }),
        });
        process.stdout.write(`${token}\n`);
      } catch (err) {
        if (err instanceof DevIssuerError) throw new UsageError(err.message);
        throw err;
      }
    });
}

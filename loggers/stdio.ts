import { StdioDestination } from '../src/logging/stdio.js';
import type { LoggingPlugin } from '../src/plugin.js';

const plugin: LoggingPlugin = {
  name: 'stdio',
  schema: { type: 'object', properties: {} },
  usage: `Logs to stderr, one line per message, each prefixed with an ISO-8601 UTC
timestamp. Structured messages from the worker are rendered as their
\`textPayload\` followed by \`key: value\` pairs sorted by key. The worker's own
stderr passes through unchanged. This is the default.

\`\`\`yaml
logging:
  implementation: stdio
\`\`\``,
  create: () => new StdioDestination(),
};

export default plugin;

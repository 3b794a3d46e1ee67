import { JsonDestination } from '../src/logging/json.js';
import type { LoggingPlugin } from '../src/plugin.js';

const plugin: LoggingPlugin = {
  name: 'json',
  schema: { type: 'object', properties: {} },
  usage: `Logs to stderr as JSON, one object per line, for cloud log agents:
\`time\` (ISO-8601 UTC), \`level\` (\`debug\`, \`info\`, \`warn\`, \`error\`),
\`source\` (\`runner\` or \`worker\`) and the message: \`textPayload\` for text, or
the fields of the worker's structured \`log\` messages. The worker's own stderr
lines are wrapped too (\`source: worker\`, \`stream: stderr\`), so every line
parses. \`--log-format json\` selects it whatever the config says.

\`\`\`yaml
logging:
  implementation: json
\`\`\``,
  create: () => new JsonDestination(),
};

export default plugin;

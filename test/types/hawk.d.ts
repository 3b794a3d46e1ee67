// The part of hawk (which ships no types) the Taskcluster fake and its tests use.
declare module 'hawk' {
  import type { IncomingMessage } from 'node:http';
  const hawk: {
    client: {
      header(
        uri: string,
        method: string,
        options: { credentials: { id: string; key: string; algorithm: string }; timestamp?: number },
      ): { header: string };
    };
    server: {
      authenticate(
        req: IncomingMessage,
        credentialsFunc: (id: string) => { id: string; key: string; algorithm: string } | undefined,
        options?: object,
      ): Promise<unknown>;
    };
  };
  export default hawk;
}

// The parts of taskcluster-client (which ships no types) that start-worker uses.
declare module 'taskcluster-client' {
  interface ClientOptions {
    rootUrl: string;
    credentials?: { clientId?: string; accessToken?: string; certificate?: string };
    retries?: number;
    timeout?: number;
  }

  class WorkerManager {
    constructor(options: ClientOptions);
    registerWorker(payload: object): Promise<unknown>;
    reregisterWorker(payload: object): Promise<unknown>;
    removeWorker(workerPoolId: string, workerGroup: string, workerId: string): Promise<unknown>;
    reportWorkerError(workerPoolId: string, payload: object): Promise<unknown>;
  }

  class Secrets {
    constructor(options: ClientOptions);
    get(name: string): Promise<unknown>;
  }

  const taskcluster: {
    WorkerManager: typeof WorkerManager;
    Secrets: typeof Secrets;
    /** The agents every client made without an `agent` option uses. */
    agents: { http: import('node:http').Agent; https: import('node:https').Agent };
  };
  export default taskcluster;
}

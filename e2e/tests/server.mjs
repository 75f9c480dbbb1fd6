// The browser tests start the server with the same launcher as the SDK tests.
export { API_KEY, startServer } from '../../compat/tests/server.mjs';

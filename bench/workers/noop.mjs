// Benchmark baseline: the cheapest JavaScript worker (the ceiling for any worker on this machine).
export default {
  fetch() {
    return new Response('ok');
  },
};

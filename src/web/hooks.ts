/** Preact hooks the views share: polling a resource, and the route in the URL's hash. */

import { useEffect, useRef, useState } from 'preact/hooks';
import { ApiError } from './api.js';

export interface Resource<T> {
  data: T | undefined;
  error: ApiError | undefined;
  /** Reads again now; the same function on every render. */
  reload: () => void;
}

/**
 * Reads `load` at once and every `everyMs` (0: once), keeping the last good answer while a
 * later read fails, so an error shows beside what was known rather than instead of it.
 */
export function usePoll<T>(load: (signal: AbortSignal) => Promise<T>, everyMs: number, deps: unknown[] = []): Resource<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | undefined>(undefined);
  const [tick, setTick] = useState(0);
  // The same function for the component's life: effects may hold it.
  const reload = useRef(() => setTick((t) => t + 1)).current;
  const loader = useRef(load);
  loader.current = load;
  useEffect(() => {
    setData(undefined);
    setError(undefined);
  }, deps);
  useEffect(() => {
    const controller = new AbortController();
    let timer: ReturnType<typeof setTimeout> | undefined;
    const read = async () => {
      let wait = everyMs;
      try {
        setData(await loader.current(controller.signal));
        setError(undefined);
      } catch (err) {
        if (controller.signal.aborted) return;
        const error = err instanceof ApiError ? err : new ApiError(0, 'CLIENT', (err as Error).message);
        setError(error);
        // Told to slow down: not before the node said.
        wait = Math.max(wait, error.retryAfterMs ?? 0);
      }
      if (everyMs > 0 && !controller.signal.aborted) timer = setTimeout(read, wait);
    };
    void read();
    return () => {
      controller.abort();
      clearTimeout(timer);
    };
  }, [...deps, tick, everyMs]);
  return { data, error, reload };
}

/** The hash route, split: "#/jobs/abc" → ["jobs", "abc"]. */
export function useRoute(): string[] {
  const parse = () =>
    location.hash
      .replace(/^#\/?/, '')
      .split('/')
      .filter(Boolean)
      .map(decodeSegment);
  const [route, setRoute] = useState(parse);
  useEffect(() => {
    const onChange = () => setRoute(parse());
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

/** A path segment decoded; a malformed escape (a crafted link) is kept as it was rather than breaking the page. */
function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    return segment;
  }
}

/** Re-renders every `ms`, for "3 s ago" labels. */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(Date.now());
  useEffect(() => {
    const timer = setInterval(() => setNow(Date.now()), ms);
    return () => clearInterval(timer);
  }, [ms]);
  return now;
}

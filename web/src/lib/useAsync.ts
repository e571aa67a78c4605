// Loads something from the API for a component, with reload.
import { useCallback, useEffect, useRef, useState } from 'preact/hooks';
import { messageOf } from '../api/client';

export interface Async<T> {
  data: T | undefined;
  error: string;
  loading: boolean;
  reload: () => void;
}

export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState('');
  const [loading, setLoading] = useState(true);
  const gen = useRef(0);
  const run = useCallback(() => {
    const mine = ++gen.current;
    setLoading(true);
    load().then(
      (d) => {
        if (mine !== gen.current) return;
        setData(d);
        setError('');
        setLoading(false);
      },
      (e) => {
        if (mine !== gen.current) return;
        setError(messageOf(e));
        setLoading(false);
      },
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  useEffect(() => {
    run();
    return () => {
      gen.current++;
    };
  }, [run]);
  return { data, error, loading, reload: run };
}

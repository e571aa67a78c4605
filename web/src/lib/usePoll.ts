// Asks pampad for something now and every `ms` while a component shows it
// (what sends no events: the hosts of the pool, their heartbeats).
import { useEffect, useState } from 'preact/hooks';
import { messageOf } from '../api/client';

export interface Poll {
  /** The last call's error; '' once one succeeds. */
  error: string;
  /** The first call has answered (either way). */
  loaded: boolean;
}

export function usePoll(load: () => Promise<unknown>, ms: number, deps: unknown[]): Poll {
  const [error, setError] = useState('');
  const [loaded, setLoaded] = useState(false);
  useEffect(() => {
    let live = true;
    let asking = false; // a slow answer is not asked for twice
    const once = () => {
      if (asking) return;
      asking = true;
      load()
        .then(
          () => '',
          (e) => messageOf(e),
        )
        .then((why) => {
          asking = false;
          if (!live) return;
          setError(why);
          setLoaded(true);
        });
    };
    once();
    const t = setInterval(once, ms);
    return () => {
      live = false;
      clearInterval(t);
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, deps);
  return { error, loaded };
}

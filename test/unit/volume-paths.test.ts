import { describe, expect, it } from 'vitest';
import { checkHostPath } from '../../src/domain/volume-paths.js';

const readOnly = { allowedVolumes: ['/srv/data'], writableVolumes: false };
const writable = { allowedVolumes: ['/srv/shared', '/srv/shared/inner', '/srv/other'], writableVolumes: true };
const refusal = (p: string, roots = readOnly) => {
  const checked = checkHostPath(p, roots);
  return 'refusal' in checked ? checked.refusal : undefined;
};

describe('checkHostPath', () => {
  it.each(['/srv/data/..', '/srv/data/../etc', '/srv/data/a/../../etc', '/srv/data/./..', '/srv/data/a/..', '/srv/data/../data', '/srv/data//../x/'])(
    'refuses ".." in %s',
    (p) => {
      expect(refusal(p)).toContain('must not contain ".."');
    },
  );

  it('normalizes ".", doubled and trailing slashes', () => {
    expect(checkHostPath('/srv//data/./in/', readOnly)).toEqual({ hostPath: '/srv/data/in', root: '/srv/data' });
    expect(checkHostPath('/srv/data/', readOnly)).toEqual({ hostPath: '/srv/data', root: '/srv/data' });
  });

  it('refuses what is not under a root, including a sibling that shares its prefix', () => {
    expect(refusal('/srv/database')).toContain('/srv/database is not under a path this node allows (/srv/data)');
    expect(refusal('relative/path')).toContain('absolute');
    expect(refusal('/srv/data/x', { allowedVolumes: [], writableVolumes: false })).toBe('this node allows no volumes');
  });

  it('mounts a root jobs can write to only whole, and not when it lies inside another', () => {
    expect(checkHostPath('/srv/other/', writable)).toEqual({ hostPath: '/srv/other', root: '/srv/other' });
    expect(refusal('/srv/other/escape', writable)).toContain('is below /srv/other, which jobs can write to');
    expect(refusal('/srv/shared/inner', writable)).toContain('lies inside /srv/shared');
  });
});

import { describe, expect, it } from 'vitest';
import { addressGroup, internalAddressKind, internalHostKind } from '../../src/domain/addresses.js';
import { imageRefusal, registryRefusal } from '../../src/domain/image-policy.js';
import { matchesImage, parseImagePattern, parseImageRef } from '../../src/domain/image-ref.js';
import { pullRefusal } from '../../src/executor/docker/images.js';

const DIGEST = `sha256:${'a'.repeat(64)}`;
const policy = (extra: { allowImages?: string[]; denyImages?: string[]; registries?: string[] } = {}) => ({
  allowImages: [],
  denyImages: [],
  registries: ['docker.io'],
  ...extra,
});

describe('parseImageRef', () => {
  it.each([
    ['alpine', 'docker.io/library/alpine:latest'],
    ['alpine:3.19', 'docker.io/library/alpine:3.19'],
    ['library/alpine', 'docker.io/library/alpine:latest'],
    ['docker.io/alpine', 'docker.io/library/alpine:latest'],
    ['docker.io/library/alpine:latest', 'docker.io/library/alpine:latest'],
    ['index.docker.io/alpine', 'docker.io/library/alpine:latest'],
    ['registry-1.docker.io/library/alpine', 'docker.io/library/alpine:latest'],
    ['gridx/busybox:local', 'docker.io/gridx/busybox:local'],
    ['GHCR.io/acme/tool:v1', 'ghcr.io/acme/tool:v1'],
    ['localhost/x', 'localhost/x:latest'],
    ['localhost:5000/a/b/c', 'localhost:5000/a/b/c:latest'],
    ['127.0.0.1:5000/x', '127.0.0.1:5000/x:latest'],
    // A first component without '.', ':' or "localhost" is a Docker Hub namespace, not a host.
    ['myregistry/x', 'docker.io/myregistry/x:latest'],
    [`alpine@${DIGEST}`, `docker.io/library/alpine@${DIGEST}`],
    // The digest decides; the tag written beside it would only mislead a policy.
    [`alpine:3.19@${DIGEST}`, `docker.io/library/alpine@${DIGEST}`],
  ])('%s is %s', (text, canonical) => {
    expect(parseImageRef(text)?.canonical).toBe(canonical);
  });

  it('returns the parts as named fields', () => {
    expect(parseImageRef('ghcr.io/acme/tool')).toEqual({
      registry: 'ghcr.io',
      repository: 'acme/tool',
      tag: 'latest',
      canonical: 'ghcr.io/acme/tool:latest',
      looksLikeId: false,
    });
    const pinned = parseImageRef(`alpine:1@${DIGEST}`)!;
    expect(pinned.digest).toBe(DIGEST);
    expect(pinned).not.toHaveProperty('tag');
  });

  it.each(['', 'Alpine', 'not valid!', 'a//b', '/x', 'x/', 'a:b:c', 'alpine@sha256:123', 'alpine:-bad', `a:${'t'.repeat(129)}`, '[::1]:5000/x'])(
    'refuses %j',
    (text) => {
      expect(parseImageRef(text)).toBeUndefined();
    },
  );

  it('sees what the engine would take for a local image id', () => {
    for (const id of [`sha256:${'0'.repeat(64)}`, 'sha256:23669b8a', '23669b8ab0d8', 'deadbeef']) {
      expect(parseImageRef(id)?.looksLikeId).toBe(true);
    }
    for (const name of ['alpine', 'docker.io/library/deadbeef', 'deadbeef:latest', 'sha256x']) {
      expect(parseImageRef(name)?.looksLikeId).toBe(false);
    }
    // Handed to the engine by its canonical name, an id is never looked up by prefix.
    expect(parseImageRef('23669b8ab0d8')?.canonical).toBe('docker.io/library/23669b8ab0d8:latest');
  });
});

describe('allow and deny entries', () => {
  const matches = (entry: string, image: string) => matchesImage(parseImagePattern(entry)!, parseImageRef(image)!);

  it('match whole repository names in every spelling, any tag', () => {
    for (const image of ['alpine', 'alpine:3.19', 'docker.io/alpine', 'index.docker.io/library/alpine:edge', `alpine@${DIGEST}`]) {
      expect(matches('alpine', image)).toBe(true);
      expect(matches('docker.io/library/alpine', image)).toBe(true);
    }
    for (const image of ['alpinefoo/x', 'alpinefoo', 'alpine/x', 'ghcr.io/library/alpine', 'library/alpine2']) {
      expect(matches('alpine', image)).toBe(false);
    }
  });

  it('an entry with a tag or digest matches only that', () => {
    expect(matches('alpine:3.19', 'docker.io/library/alpine:3.19')).toBe(true);
    expect(matches('alpine:3.19', 'alpine')).toBe(false);
    expect(matches('alpine:3.19', `alpine:3.19@${DIGEST}`)).toBe(false);
    expect(matches(`alpine@${DIGEST}`, `docker.io/library/alpine@${DIGEST}`)).toBe(true);
    expect(matches(`alpine@${DIGEST}`, 'alpine:latest')).toBe(false);
  });

  it('"*" matches within one path component; a trailing "/" covers everything below', () => {
    expect(matches('ghcr.io/acme/*', 'ghcr.io/acme/tool:1')).toBe(true);
    expect(matches('ghcr.io/acme/*', 'ghcr.io/acme/team/tool')).toBe(false);
    expect(matches('ghcr.io/acme/*', 'ghcr.io/acmex/tool')).toBe(false);
    expect(matches('ghcr.io/acme/', 'ghcr.io/acme/team/tool')).toBe(true);
    expect(matches('ghcr.io/acme/', 'ghcr.io/acmex/tool')).toBe(false);
    expect(matches('gridx/', 'docker.io/gridx/busybox:local')).toBe(true);
    expect(matches('gridx/', 'gridxfoo/busybox')).toBe(false);
    expect(matches('docker.io/', 'alpine')).toBe(true);
    expect(matches('python:3.*', 'python:3.9-slim')).toBe(true);
    expect(matches('python:3.*', 'python:2.7')).toBe(false);
    expect(matches('alp*', 'alpine')).toBe(true);
    expect(matches('alp*', 'alpinefoo/x')).toBe(false);
  });

  it('an entry that is not a reference or pattern does not parse', () => {
    for (const entry of ['', 'Not Valid!', '/', '*@sha256:1', 'a:b/']) expect(parseImagePattern(entry)).toBeUndefined();
  });
});

describe('imageRefusal', () => {
  it('a deny entry is not bypassed by another spelling', () => {
    const deny = policy({ denyImages: ['evil/miner'] });
    for (const image of ['evil/miner', 'docker.io/evil/miner', 'index.docker.io/evil/miner:v2', `evil/miner@${DIGEST}`]) {
      expect(imageRefusal(image, deny)).toContain("deny list (runner.docker.images.deny: evil/miner)");
    }
    expect(imageRefusal('evil/minerx', deny)).toBeUndefined();
  });

  it('an allow entry admits its repository only', () => {
    const allow = policy({ allowImages: ['alpine'] });
    expect(imageRefusal('docker.io/library/alpine:3.19', allow)).toBeUndefined();
    expect(imageRefusal('alpinefoo/x', allow)).toContain('not on this node\'s image allow list (runner.docker.images.allow: alpine)');
  });

  it('a bare image id is refused whenever a list is set', () => {
    for (const id of [`sha256:${'b'.repeat(64)}`, 'b2c3d4']) {
      expect(imageRefusal(id, policy())).toBeUndefined();
      expect(imageRefusal(id, policy({ denyImages: ['evil'] }))).toContain('looks like an image id');
      expect(imageRefusal(id, policy({ allowImages: ['b2c3d4'] }))).toContain('looks like an image id');
    }
  });

  it('fails closed on an entry it cannot read', () => {
    expect(imageRefusal('alpine', policy({ allowImages: ['Bad Entry'] }))).toContain('allow list');
    expect(imageRefusal('alpine', policy({ denyImages: ['Bad Entry'] }))).toContain('deny list');
  });

  it('registries come from the allow-list; "*" admits public ones only', () => {
    expect(imageRefusal('ghcr.io/acme/tool', policy())).toContain('registry ghcr.io is not allowed on this node (runner.docker.registries: docker.io)');
    expect(imageRefusal('ghcr.io/acme/tool', policy({ registries: ['ghcr.io'] }))).toBeUndefined();
    expect(imageRefusal('alpine', policy({ registries: ['ghcr.io'] }))).toContain('registry docker.io is not allowed');
    expect(imageRefusal('ghcr.io/acme/tool', policy({ registries: ['*'] }))).toBeUndefined();
    expect(imageRefusal('alpine', policy({ registries: ['index.docker.io'] }))).toBeUndefined();
  });

  it.each([
    ['127.0.0.1:5000/x', 'loopback'],
    ['localhost:5000/x', 'loopback'],
    ['localhost/x', 'loopback'],
    ['app.localhost/x', 'loopback'],
    ['127.1:80/x', 'loopback'],
    ['2130706433:80/x', 'loopback'],
    ['0x7f.0.0.1:80/x', 'loopback'],
    ['0.0.0.0:80/x', 'unspecified'],
    ['10.1.2.3/x', 'private'],
    ['172.20.0.1:5000/x', 'private'],
    ['192.168.1.1/x', 'private'],
    ['169.254.169.254/x', 'link-local'],
  ])('private host %s is refused even under "*", unless listed by name', (image, kind) => {
    const registry = parseImageRef(image)!.registry;
    expect(imageRefusal(image, policy({ registries: ['*'] }))).toContain(`is a ${kind} address`);
    expect(imageRefusal(image, policy({ registries: ['*', registry] }))).toBeUndefined();
  });

  it('listing a host without its port does not list every port', () => {
    expect(registryRefusal('localhost:5000', ['localhost'])).toContain('loopback');
    expect(registryRefusal('172.16.0.1', ['*'])).toContain('private');
    expect(registryRefusal('172.32.0.1', ['*'])).toBeUndefined();
  });

  it('quotes at most 200 characters of the image', () => {
    const long = `${'a'.repeat(300)}/x`;
    const message = imageRefusal(long, policy({ allowImages: ['alpine'] }))!;
    expect(message).toContain(`"${'a'.repeat(200)}…"`);
    expect(message).not.toContain('a'.repeat(201));
  });
});

describe('internal addresses', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['::1', 'loopback'],
    ['0:0:0:0:0:0:0:1', 'loopback'],
    ['::', 'unspecified'],
    ['::ffff:127.0.0.1', 'loopback'],
    ['::ffff:7f00:1', 'loopback'],
    ['::ffff:10.0.0.1', 'private'],
    ['fc00::1', 'private'],
    ['fd12:3456::1', 'private'],
    ['fe80::1%eth0', 'link-local'],
    ['febf::1', 'link-local'],
    ['100.64.0.1', 'private'],
    ['8.8.8.8', undefined],
    ['2001:4860:4860::8888', undefined],
    ['::ffff:8.8.8.8', undefined],
    ['ghcr.io', undefined],
  ])('%s is %s', (address, kind) => {
    expect(internalAddressKind(address)).toBe(kind);
  });

  it('names the localhost names as loopback', () => {
    expect(internalHostKind('LOCALHOST')).toBe('loopback');
    expect(internalHostKind('localhost.example.com')).toBeUndefined();
  });

  it('counts an IPv6 address as its /64 for limits per address, however it is written, and a mapped IPv4 address as that address', () => {
    expect(addressGroup('2001:db8:0:1::5')).toBe('2001:db8:0:1::/64');
    expect(addressGroup('2001:0DB8:0000:0001:ffff:ffff:ffff:ffff')).toBe('2001:db8:0:1::/64');
    expect(addressGroup('::ffff:100.64.1.2')).toBe('100.64.1.2');
    expect(addressGroup('100.64.1.2')).toBe('100.64.1.2');
  });
});

describe('pullRefusal (before the engine connects)', () => {
  const lookupTo = (...addresses: string[]) => async () => addresses;

  it('refuses a name that resolves to an internal address unless it is listed by name', async () => {
    const ref = parseImageRef('registry.example.com/x')!;
    expect(await pullRefusal(ref, ['*'], lookupTo('93.184.216.34', '10.0.0.5'))).toContain('resolves to a private address');
    expect(await pullRefusal(ref, ['*'], lookupTo('93.184.216.34'))).toBeUndefined();
    expect(await pullRefusal(ref, ['*', 'registry.example.com'], lookupTo('10.0.0.5'))).toBeUndefined();
  });

  it('does not resolve a listed registry, and refuses one that does not resolve', async () => {
    const never = async (): Promise<string[]> => {
      throw new Error('must not be asked');
    };
    expect(await pullRefusal(parseImageRef('alpine')!, ['docker.io'], never)).toBeUndefined();
    expect(await pullRefusal(parseImageRef('nowhere.invalid/x')!, ['*'], never)).toContain('does not resolve');
    expect(await pullRefusal(parseImageRef('ghcr.io/x')!, ['docker.io'], never)).toContain('not allowed');
  });
});

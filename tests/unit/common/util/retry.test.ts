import { describe, expect, it, vi } from 'vitest';
import { TransportError, ValidationError } from '../../../../common/errors.ts';
import { retry } from '../../../../common/util/retry.ts';

describe('retry', () => {
  it('retries retriable errors until success', async () => {
    const fn = vi.fn<(attempt: number) => Promise<string>>();
    fn.mockRejectedValueOnce(new TransportError('down'))
      .mockRejectedValueOnce(new TransportError('down'))
      .mockResolvedValue('ok');
    const onRetry = vi.fn();
    await expect(retry(fn, { initialDelayMs: 1, onRetry })).resolves.toBe('ok');
    expect(fn).toHaveBeenCalledTimes(3);
    expect(onRetry).toHaveBeenCalledTimes(2);
  });

  it('does not retry non-retriable errors', async () => {
    const fn = vi.fn().mockRejectedValue(new ValidationError('bad', 'bad input'));
    await expect(retry(fn, { initialDelayMs: 1 })).rejects.toBeInstanceOf(ValidationError);
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('does not retry unknown errors by default', async () => {
    const fn = vi.fn().mockRejectedValue(new Error('boom'));
    await expect(retry(fn, { initialDelayMs: 1 })).rejects.toThrow('boom');
    expect(fn).toHaveBeenCalledTimes(1);
  });

  it('gives up after the attempts and throws the last error', async () => {
    const fn = vi.fn().mockRejectedValue(new TransportError('still down'));
    await expect(retry(fn, { attempts: 3, initialDelayMs: 1 })).rejects.toThrow('still down');
    expect(fn).toHaveBeenCalledTimes(3);
  });
});

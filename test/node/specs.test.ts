// The one --input parser that the CLI and the app share: strict about what it guesses.
import { describe, expect, it } from 'vitest';
import { parseDims, parseSpec, parseSpecFields } from '../../app/contract/specs.js';

describe('input spec parser', () => {
  it.each([
    ['1,3,32,32', [1, 3, 32, 32]],
    [' 1, 3, 32, 32 ', [1, 3, 32, 32]],
    ['[1, 3, 32, 32]', [1, 3, 32, 32]],
    ['(1, 3, 32, 32)', [1, 3, 32, 32]],
    ['torch.Size([1, 3, 32, 32])', [1, 3, 32, 32]],
    ['torch.Size([])', []],
    ['batch=1..8,3', [{ name: 'batch', min: 1, max: 8 }, 3]],
    ['batch=..64,7', [{ name: 'batch', max: 64 }, 7]],
    ['batch = 1 .. 8, 3, 224, 224', [{ name: 'batch', min: 1, max: 8 }, 3, 224, 224]],
    ['(8,)', [8]],
    ['[1, 3, 224,]', [1, 3, 224]],
  ])('accepts %s', (text, dims) => {
    expect(parseDims(text)).toEqual(dims);
  });

  it.each([
    ['1 3 32 32', /commas, e\.g\. 1,3,32,32/],
    // issue 22: these were taken as [batch=1..83224224] and as a 3-D shape
    ['batch=1..8 3 224 224', /"batch=1\.\.8 3 224 224" holds 4 sizes without commas.*e\.g\. batch=1\.\.8,3,224,224/],
    ['1,3,224,', /ends with a comma: is a size missing\? Write 1,3,224 if not/],
    ['1,3 224,224', /"3 224" holds 2 sizes without commas/],
    ['1x3x224x224', /holds 4 sizes without commas.*e\.g\. 1,3,224,224/],
    ['1;3', /holds 2 sizes without commas/],
    ['batch=1..8 3', /holds 2 sizes/],
    ['1,3,abc', /"abc" is not a number; for a symbolic size give its range, e\.g\. abc=1\.\.64/],
    ['1,0', /positive integer/],
    ['1,,3', /empty dimension/],
    ['', /give the dimensions/],
    ['batch=0..4', /start at 1/],
    ['batch=9..4', /empty range/],
    ['1.5', /not a positive integer/],
  ])('refuses %s', (text, why) => {
    expect(() => parseDims(text)).toThrow(why);
  });

  it('names the field at fault, for each bad field', () => {
    const r = parseSpecFields({ name: '', dims: '1 3', dtype: 'float128', range: '3..1' });
    expect(r.spec).toBeNull();
    expect(Object.keys(r.errors).sort()).toEqual(['dims', 'dtype', 'name', 'range']);
    expect(parseSpecFields({ name: 'x', dims: '[1, 3]', dtype: 'torch.float16' }).spec).toEqual({ name: 'x', dims: [1, 3], dtype: 'float16' });
  });

  it('the CLI form uses the same rules and says which field is wrong', () => {
    expect(parseSpec('x:torch.Size([1, 3, 224, 224]):float32')).toEqual({ name: 'x', dims: [1, 3, 224, 224], dtype: 'float32' });
    expect(parseSpec('ids:batch=1..8,32:int64:0..1000')).toEqual({ name: 'ids', dims: [{ name: 'batch', min: 1, max: 8 }, 32], dtype: 'int64', range: [0, 1000] });
    expect(() => parseSpec('x:1 3 32 32:float32')).toThrow(/--input "x:1 3 32 32:float32": dims: /);
    expect(() => parseSpec('x:1,3:float64')).toThrow(/dtype: "float64" is not a supported dtype/);
    expect(() => parseSpec('x:1,3')).toThrow(/is not an input spec/);
  });
});

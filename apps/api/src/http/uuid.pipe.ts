import { PipeTransform } from '@nestjs/common';
import { isUuid } from '../../../../libs/domain/src/ids.js';
import { NotFoundProblem } from '../../../../libs/core/src/index.js';

/** A path id that is not even a UUID names nothing: 404, like any other unknown id. */
export const uuidPipe: PipeTransform<string, string> = {
  transform(value: string) {
    if (!isUuid(value)) throw new NotFoundProblem('resource');
    return value.toLowerCase();
  },
};

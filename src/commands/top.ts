import definition from '../cli/defs/top.js'
import {oclifCommand} from '../cli/oclif-adapter.js'

export default oclifCommand(definition)
